import { join } from 'node:path'
import { readFileSync } from 'node:fs'
import { errorsDocumented } from '@gatehouse/testing'
import { IpFilterErrorCodes } from '@gatehouse/ip-filter'

it('documents every error code in the README and no other', () => {
  expect(errorsDocumented(join(__dirname, '..', 'README.md'), IpFilterErrorCodes)).toEqual({ missing: [], stale: [] })
})

it('raises only codes that errors.ts lists', () => {
  const src = ['middleware.ts', 'options.ts', 'redis-store.ts', 'trust-proxy.ts', 'address.ts', 'store.ts']
    .map((f) => readFileSync(join(__dirname, '..', 'src', f), 'utf8'))
    .join('\n')
  const used = new Set([...src.matchAll(/'(GH_IPF_[A-Z_]+)'/g)].map((m) => m[1]!))
  for (const code of used) expect(Object.values(IpFilterErrorCodes)).toContain(code)
})
