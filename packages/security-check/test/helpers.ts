import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { main, type CliIo } from '../src/main'

// The rule table's test vectors (fake credentials built at run time) live in @gatehouse/testing.
export { ALNUM, BASE32, BASE64, DIGITS, expectMasked, FAKE_KEYS, HEX, LOWER, rand, secretPart, UPPER, URLSAFE } from '@gatehouse/testing'

export function tempDir(prefix = 'gh-sc-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** A fresh temporary directory per test (made before each, removed after): call the getter in a test or hook. */
export function tempDirPerTest(prefix = 'gh-sc-'): () => string {
  let current: { dir: string; cleanup: () => void } | undefined
  beforeEach(() => {
    current = tempDir(prefix)
  })
  afterEach(() => current?.cleanup())
  return () => current!.dir
}

export interface CliRun {
  code: number
  stdout: string
  stderr: string
}

/** Run the CLI in-process. */
export async function runCli(argv: readonly string[], io: Partial<CliIo> = {}): Promise<CliRun> {
  let stdout = ''
  let stderr = ''
  const code = await main(argv, {
    stdout: (t) => {
      stdout += t
    },
    stderr: (t) => {
      stderr += t
    },
    ...io,
  })
  return { code, stdout, stderr }
}

export const PKG_DIR = join(__dirname, '..')
export const CLI = join(PKG_DIR, 'dist', 'cli.js')

function newestSource(dir: string): number {
  let newest = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : statSync(p).mtimeMs)
  }
  return newest
}

const sleepSync = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/**
 * Build dist/ with `npx tsc -b packages/security-check` when it is missing or older than a source
 * file, so spawned runs of dist/cli.js test the current code. Test files run in parallel, so a
 * lock directory makes one of them build while the others wait (bounded: 3 minutes).
 */
export function ensureBuilt(): void {
  const fresh = (): boolean => existsSync(CLI) && statSync(CLI).mtimeMs >= newestSource(join(PKG_DIR, 'src'))
  if (fresh()) return
  const lock = join(tmpdir(), 'gatehouse-security-check-build.lock')
  const deadline = Date.now() + 180_000
  for (;;) {
    try {
      mkdirSync(lock)
      break
    } catch {
      // A lock older than the deadline is a leftover of a killed run.
      if (Date.now() - statSync(lock, { throwIfNoEntry: false })!.mtimeMs > 180_000)
        rmSync(lock, { recursive: true, force: true })
      if (Date.now() > deadline) throw new Error('timed out waiting for another test file to build dist/')
      sleepSync(200)
      if (fresh()) return
    }
  }
  try {
    if (!fresh())
      execFileSync('npx', ['tsc', '-b', 'packages/security-check'], {
        cwd: join(PKG_DIR, '..', '..'),
        stdio: 'pipe',
        timeout: 170_000,
      })
  } finally {
    rmSync(lock, { recursive: true, force: true })
  }
}
