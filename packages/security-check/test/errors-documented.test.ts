import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { errorsDocumented } from '@gatehouse/testing'
import { SECRET_RULE_IDS, SecurityCheckErrorCodes } from '../src'

const README = join(__dirname, '..', 'README.md')

it('documents every error code in the README and no other', () => {
  expect(errorsDocumented(README, SecurityCheckErrorCodes)).toEqual({ missing: [], stale: [] })
})

it('lists every secret rule in the README rule table and no other', () => {
  const text = readFileSync(README, 'utf8')
  const section = text.split(/^### Secret rules\s*$/m)[1]?.split(/^##/m)[0] ?? ''
  const documented = [...section.matchAll(/^\| `([a-z0-9-]+)` \|/gm)].map((m) => m[1])
  expect(documented).toEqual([...SECRET_RULE_IDS])
})
