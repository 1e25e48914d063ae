import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { RateLimitErrorCodes } from '@gatehouse/rate-limit'

describe('error codes', () => {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8')
  const section = readme.split(/^## Errors$/m)[1]?.split(/^## /m)[0] ?? ''
  const documented = [...section.matchAll(/^\| `(GH_[A-Z_]+)` \|/gm)].map((m) => m[1])
  const source = readFileSync(join(__dirname, '..', 'src', 'errors.ts'), 'utf8')
  const declared = [...source.matchAll(/^\s+(GH_[A-Z_]+): '(GH_[A-Z_]+)',$/gm)].map((m) => {
    expect(m[1]).toBe(m[2])
    return m[1]
  })

  it('reads a non-empty Errors table and code list', () => {
    expect(documented.length).toBeGreaterThan(5)
    expect(declared.length).toBe(Object.keys(RateLimitErrorCodes).length)
  })

  it.each(Object.keys(RateLimitErrorCodes))('documents %s in the README Errors table', (code) => {
    expect(documented).toContain(code)
  })

  it('documents no code that does not exist, and none twice', () => {
    expect(documented.filter((c) => !(c! in RateLimitErrorCodes))).toEqual([])
    expect(new Set(documented).size).toBe(documented.length)
  })

  it('has every row in the code | when | fix form', () => {
    const header = section.split('\n').find((l) => l.startsWith('| code'))
    expect(header).toBe('| code | when | fix |')
    for (const line of section.split('\n').filter((l) => l.startsWith('| `GH_'))) {
      expect(line.split(' | ')).toHaveLength(3)
    }
  })
})
