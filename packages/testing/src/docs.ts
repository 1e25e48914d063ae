import { readFileSync } from 'node:fs'

/**
 * Compare a package's error codes with the Errors table of its README: returns the codes that are
 * not documented and the documented codes that do not exist. Both should be empty.
 */
export function errorsDocumented(readmePath: string, codes: Record<string, string>): { missing: string[]; stale: string[] } {
  const readme = readFileSync(readmePath, 'utf8')
  const section = readme.split(/^## Errors\s*$/m)[1]?.split(/^## /m)[0] ?? ''
  const documented = new Set([...section.matchAll(/^\|\s*`?(GH_[A-Z0-9_]+)`?\s*\|/gm)].map((m) => m[1]!))
  const actual = new Set(Object.values(codes))
  return {
    missing: [...actual].filter((c) => !documented.has(c)).sort(),
    stale: [...documented].filter((c) => !actual.has(c)).sort(),
  }
}
