import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { RequestGuardErrorCodes } from '@gatehouse/request-guard'

describe('@gatehouse/request-guard error codes', () => {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8')
  const errorsSection = readme.split(/^## Errors\s*$/m)[1]?.split(/^## /m)[0] ?? ''
  const documented = new Set([...errorsSection.matchAll(/^\|\s*`(GH_[A-Z_]+)`\s*\|/gm)].map((m) => m[1]!))
  const source = readFileSync(join(__dirname, '..', 'src', 'errors.ts'), 'utf8')
  const declared = new Set([...source.matchAll(/^\s+(GH_[A-Z_]+):/gm)].map((m) => m[1]!))

  it('finds the codes and the table', () => {
    expect(declared.size).toBeGreaterThan(10)
    expect(documented.size).toBeGreaterThan(10)
    expect([...declared].sort()).toEqual(Object.keys(RequestGuardErrorCodes).sort())
  })

  it('documents every code in the README Errors table', () => {
    expect([...declared].filter((c) => !documented.has(c))).toEqual([])
  })

  it('documents no code that does not exist', () => {
    expect([...documented].filter((c) => !declared.has(c))).toEqual([])
  })

  it('gives every row a when and a fix', () => {
    for (const line of errorsSection.split('\n').filter((l) => /^\|\s*`GH_/.test(l))) {
      const cells = line
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim())
      expect(cells).toHaveLength(3)
      expect(cells[1]!.length).toBeGreaterThan(5)
      expect(cells[2]!.length).toBeGreaterThan(5)
    }
  })
})
