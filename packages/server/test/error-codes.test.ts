import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs'
import { join } from 'node:path'

/**
 * Error-code hygiene across the repository: every `GH_…` code a package's source uses is declared
 * in its own errors.ts (or is core's, for what core raises on its behalf), and carries the
 * package's prefix. Each package's own test checks that what it declares is documented.
 */

const root = join(__dirname, '..', '..', '..')
const packages = readdirSync(join(root, 'packages')).filter((p) => existsSync(join(root, 'packages', p, 'src')))

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? sources(path) : name.endsWith('.ts') ? [path] : []
  })
}

/** `GH_X: 'GH_X'` entries of a package's errors.ts. */
function declared(pkg: string): Set<string> {
  const file = join(root, 'packages', pkg, 'src', 'errors.ts')
  if (!existsSync(file)) return new Set()
  return new Set([...readFileSync(file, 'utf8').matchAll(/^\s+(GH_[A-Z0-9_]+): '(GH_[A-Z0-9_]+)',$/gm)].map((m) => m[1]!))
}

const core = declared('core')

/** The prefix table of CONTRIBUTING.md: package name → its one error-code prefix. */
const PREFIXES = new Map(
  [...readFileSync(join(root, 'CONTRIBUTING.md'), 'utf8').matchAll(/^\| `(@gatehouse\/[a-z-]+)` \| `(GH_[A-Z]+_)` \|$/gm)].map((m) => [m[1]!, m[2]!] as const),
)

describe('error codes across the repository', () => {
  it('finds the packages and their declarations', () => {
    expect(packages.length).toBeGreaterThan(10)
    expect(core.size).toBeGreaterThan(3)
  })

  it('gives each prefix of the style guide to exactly one package', () => {
    expect(PREFIXES.size).toBe(packages.filter((p) => p !== 'testing').length)
    expect(new Set(PREFIXES.values()).size).toBe(PREFIXES.size)
  })

  it.each(packages.filter((p) => p !== 'testing'))('%s: every code its source uses is declared, under one prefix', (pkg) => {
    const own = declared(pkg)
    if (own.size === 0) return expect(pkg).toBe('testing')
    // The prefix the style guide gives the package: GH_RL_, GH_AUTH_, GH_PROXY_…
    const name = (JSON.parse(readFileSync(join(root, 'packages', pkg, 'package.json'), 'utf8')) as { name: string }).name
    const prefix = PREFIXES.get(name)
    expect([name, prefix]).toEqual([name, expect.stringMatching(/^GH_[A-Z]+_$/)])
    for (const code of own) expect([code, code.startsWith(String(prefix))]).toEqual([code, true])
    const used = new Set<string>()
    for (const file of sources(join(root, 'packages', pkg, 'src'))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/['"`](GH_[A-Z0-9]+_[A-Z0-9_]*[A-Z0-9])['"`]/g)) used.add(m[1]!)
    }
    const undeclared = [...used].filter((code) => !own.has(code) && !core.has(code))
    expect(undeclared).toEqual([])
  })

  it("documents the gateway's own codes in the root README", () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8')
    const section = readme.split(/^## Errors of the gateway$/m)[1]?.split(/^## /m)[0] ?? ''
    for (const code of [...declared('server'), 'GH_CORE_SHARED_STATE_UNAVAILABLE']) expect(section).toContain(`| \`${code}\` |`)
  })
})
