import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

const dirs: string[] = []
export function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-dfp-'))
  dirs.push(d)
  return d
}
export function cleanupDirs(): void {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
}

export const modeOf = (p: string): number => fs.statSync(p).mode & 0o777
