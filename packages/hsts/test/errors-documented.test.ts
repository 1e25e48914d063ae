import { join } from 'node:path'
import { readFileSync } from 'node:fs'
import { errorsDocumented } from '@gatehouse/testing'
import { HstsErrorCodes } from '@gatehouse/hsts'

it('documents every error code in the README and no other', () => {
  expect(errorsDocumented(join(__dirname, '..', 'README.md'), HstsErrorCodes)).toEqual({ missing: [], stale: [] })
})

it('raises only codes that errors.ts lists', () => {
  const src = ['middleware.ts', 'options.ts', 'https-only.ts']
    .map((f) => readFileSync(join(__dirname, '..', 'src', f), 'utf8'))
    .join('\n')
  const used = new Set([...src.matchAll(/'(GH_HSTS_[A-Z_]+)'/g)].map((m) => m[1]!))
  expect(used.size).toBeGreaterThan(0)
  for (const code of used) expect(Object.values(HstsErrorCodes)).toContain(code)
})
