import * as fs from 'node:fs'
import * as path from 'node:path'
import { DeviceFingerprintErrorCodes } from '@gatehouse/device-fingerprint'

describe('error codes', () => {
  const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8')
  const section = readme.split(/^## Errors$/m)[1]?.split(/^## /m)[0] ?? ''
  const documented = [...section.matchAll(/^\| `(GH_[A-Z_]+)` \|/gm)].map((m) => m[1])
  const source = fs.readFileSync(path.join(__dirname, '..', 'src', 'errors.ts'), 'utf8')
  const declared = [...source.matchAll(/^\s+(GH_[A-Z_]+): '(GH_[A-Z_]+)'/gm)].map((m) => {
    expect(m[1]).toBe(m[2])
    return m[1]
  })

  it('documents every code in the README Errors table, with no stale ones', () => {
    expect(declared.length).toBeGreaterThan(0)
    expect([...documented].sort()).toEqual([...declared].sort())
    expect(Object.keys(DeviceFingerprintErrorCodes).sort()).toEqual([...declared].sort())
  })

  it('uses the GH_DFP_ prefix', () => {
    for (const code of declared) expect(code).toMatch(/^GH_DFP_[A-Z_]+$/)
  })
})
