import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PROVIDERS } from '@gatehouse/core'
import { errorsDocumented } from '@gatehouse/testing'
import { ProxyErrorCodes } from '@gatehouse/proxy'

const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8')

it('documents every error code', () => {
  expect(errorsDocumented(join(__dirname, '..', 'README.md'), ProxyErrorCodes)).toEqual({ missing: [], stale: [] })
})

it("lists every endpoint of the registry with its method, path, default and kind, and nothing else", () => {
  const rows = [...readme.matchAll(/^\| `([a-z0-9_.]+)` \| (GET|POST|DELETE) \| `([^`]+)` \| (on|off) \| (yes|no) \|/gm)].map((m) => [m[1], m[2], m[3], m[4], m[5]])
  const registry = Object.values(PROVIDERS).flatMap((p) => p.endpoints.map((e) => [e.id, e.method, e.path, e.default ? 'on' : 'off', e.inference ? 'yes' : 'no']))
  expect(rows).toEqual(registry)
})
