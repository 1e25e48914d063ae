import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sleep } from '@gatehouse/testing'

export const root = join(__dirname, '..', '..', '..')
export const cliPath = join(root, 'packages', 'server', 'dist', 'cli.js')

/** Build the server once if its dist is missing (npm test builds first; a bare jest run may not). */
export function ensureBuilt(): void {
  if (!existsSync(cliPath)) execFileSync('npx', ['tsc', '-b', 'packages/server'], { cwd: root, stdio: 'inherit' })
}

/**
 * Hold the gateway's documented port (8317) for a test that runs docs as written: jest runs test
 * files in parallel, and two of them (the README quickstart, the operator guide) start a gateway on
 * it. A lock directory makes the second wait (bounded) instead of failing; a lock older than five
 * minutes is the leftover of a killed run. Returns the release function.
 */
export async function holdDocumentedPort(timeoutMs = 120_000): Promise<() => void> {
  const lock = join(tmpdir(), 'gatehouse-test-port-8317.lock')
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      mkdirSync(lock)
      return () => rmSync(lock, { recursive: true, force: true })
    } catch {
      const st = statSync(lock, { throwIfNoEntry: false })
      if (st && Date.now() - st.mtimeMs > 300_000) rmSync(lock, { recursive: true, force: true })
      if (Date.now() > deadline) throw new Error(`port 8317 stayed held by another test for ${timeoutMs} ms (${lock})`)
      await sleep(200)
    }
  }
}

export interface Run {
  code: number | null
  stdout: string
  stderr: string
}

/** Run the CLI to completion. */
export function runCli(args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { cwd: opts.cwd, env: { PATH: process.env.PATH, ...opts.env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

export interface Started {
  child: ChildProcess
  url: string
  output: () => { stdout: string; stderr: string }
  exited: Promise<number | null>
}

/** Start the gateway as a real process and wait for its "listening" line. */
export function startCli(args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { cwd: opts.cwd, env: { PATH: process.env.PATH, ...opts.env } })
    let stdout = ''
    let stderr = ''
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`gateway did not start:\n${stderr}`))
    }, 15_000)
    const check = (): void => {
      const m = /"message":"gatehouse listening"[^\n]*"url":"([^"]+)"/.exec(stdout)
      if (m) {
        clearTimeout(timer)
        resolve({ child, url: m[1]!, output: () => ({ stdout, stderr }), exited })
      }
    }
    child.stdout!.on('data', (d) => {
      stdout += d
      check()
    })
    child.stderr!.on('data', (d) => (stderr += d))
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`gateway exited with ${code}:\n${stderr}`))
    })
  })
}
