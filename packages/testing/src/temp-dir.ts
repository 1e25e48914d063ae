import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A fresh directory `gh-<label>-XXXXXX` under the system temp dir; `cleanup()` removes it and all in it. */
export function tempDir(label = 'test'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `gh-${label}-`))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Temp dirs made on demand (`make()`) and removed together (`cleanup()`, in an afterEach or afterAll). */
export function tempDirs(label = 'test'): { make: () => string; cleanup: () => void } {
  const made: Array<() => void> = []
  return {
    make: () => {
      const { dir, cleanup } = tempDir(label)
      made.push(cleanup)
      return dir
    },
    cleanup: () => {
      for (const cleanup of made.splice(0)) cleanup()
    },
  }
}
