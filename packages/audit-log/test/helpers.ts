import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { SecurityEvent } from '@gatehouse/core'

export const newKey = (): string => randomBytes(32).toString('hex')

export const fileLines = (path: string): string[] => {
  const text = readFileSync(path, 'utf8')
  return text === '' ? [] : text.replace(/\n$/, '').split('\n')
}

export const parsedLines = (path: string): Array<Record<string, unknown>> =>
  fileLines(path).map((l) => JSON.parse(l) as Record<string, unknown>)

export const sampleEvent = (overrides: Partial<SecurityEvent> = {}): SecurityEvent => ({
  timestamp: '2026-02-19T23:00:00.000Z',
  event_type: 'auth_failure',
  provider: 'claude',
  user_id: 'key_3f9a0b1c',
  ip: '192.168.1.100',
  request_id: 'req-1',
  result: 'invalid_token',
  details: { reason: 'Token expired' },
  ...overrides,
})

const repoRoot = join(__dirname, '..', '..', '..')

export interface ChildRun {
  /** Resolves with the first stdout line that matches. */
  waitForLine(re: RegExp, ms?: number): Promise<string>
  kill(signal: NodeJS.Signals): void
  exited: Promise<{ code: number | null; stdout: string; stderr: string }>
}

/** Run test/fixtures/child.ts under ts-node with the given arguments (and uid, when root). */
export function runChild(args: string[], options: { uid?: number; gid?: number } = {}): ChildRun {
  const child = spawn(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', '-r', join(__dirname, 'fixtures', 'register.js'), join(__dirname, 'fixtures', 'child.ts'), ...args],
    {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', TS_NODE_PROJECT: join(repoRoot, 'tsconfig.test.json') },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.uid !== undefined ? { uid: options.uid, gid: options.gid ?? options.uid } : {}),
    },
  )
  let stdout = ''
  let stderr = ''
  const listeners = new Set<() => void>()
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString()
    for (const l of listeners) l()
  })
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.on('exit', (code) => resolve({ code, stdout, stderr }))
  })
  return {
    exited,
    kill: (signal) => child.kill(signal),
    waitForLine: (re, ms = 20_000) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const line = stdout.split('\n').find((l) => re.test(l))
          if (line !== undefined) {
            listeners.delete(check)
            clearTimeout(timer)
            resolve(line)
          }
        }
        const timer = setTimeout(() => {
          listeners.delete(check)
          reject(new Error(`child did not print ${re} in ${ms} ms; stdout: ${stdout} stderr: ${stderr}`))
        }, ms)
        listeners.add(check)
        void exited.then(() => {
          check()
          if (listeners.has(check)) {
            listeners.delete(check)
            clearTimeout(timer)
            reject(new Error(`child exited without printing ${re}; stdout: ${stdout} stderr: ${stderr}`))
          }
        })
        check()
      }),
  }
}
