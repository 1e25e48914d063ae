import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { httpRequest, type HttpReply } from '@gatehouse/testing'

export const root = join(__dirname, '..', '..', '..', '..')
export const scriptsDir = join(root, 'scripts')
export const cliPath = join(root, 'packages', 'server', 'dist', 'cli.js')

/** Load one of the repository's CommonJS scripts (scripts/*.js) for its exported functions. */
export const loadScript = createRequire(__filename)

export const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0

export function hasCommand(cmd: string, args: string[] = ['--version']): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore', timeout: 10_000 }).status === 0
}

export const hasPythonSeccomp = (): boolean => hasCommand('/usr/bin/python3', ['-c', 'import seccomp'])

/**
 * The deploy tests run the built server and stage every workspace package the server needs:
 * `npm test` builds first; a bare jest run builds here once.
 */
export function ensureBuiltAll(): void {
  const needed = ['server', 'testing', 'security-check', 'core'].map((p) =>
    join(root, 'packages', p, 'dist', 'index.js'),
  )
  if (needed.every((f) => existsSync(f)) && existsSync(cliPath)) return
  execFileSync('npx', ['tsc', '-b'], { cwd: root, stdio: 'inherit', timeout: 240_000 })
}

export interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Run a command to completion, killed after `timeoutMs`. */
export function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? root,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000)
    child.on('error', (e) => {
      clearTimeout(timer)
      resolve({ code: null, signal: null, stdout, stderr: `${stderr}${String(e)}` })
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

export type Reply = Omit<HttpReply, 'json'>

/** One HTTP(S) request without keep-alive; `ca` trusts a test certificate (for the name localhost). */
export async function request(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: unknown; ca?: string } = {},
): Promise<Reply> {
  const u = new URL(url)
  const text = opts.body !== undefined ? JSON.stringify(opts.body) : undefined
  const { status, headers, body } = await httpRequest(u.origin, {
    method: opts.method ?? 'GET',
    path: `${u.pathname}${u.search}`,
    headers: { ...(opts.headers ?? {}), ...(text !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(text !== undefined ? { body: text } : {}),
    ...(opts.ca ? { ca: opts.ca, servername: 'localhost' } : {}),
  })
  return { status, headers, body }
}

// ---------------------------------------------------------------- Dockerfile

export interface Instruction {
  /** Upper-case instruction name. */
  name: string
  /** Everything after the name, continuation lines joined. */
  args: string
  line: number
}

export interface Stage {
  from: string
  alias: string | undefined
  instructions: Instruction[]
}

export interface Dockerfile {
  /** ARGs declared before the first FROM, with their defaults. */
  globalArgs: Record<string, string>
  stages: Stage[]
}

/** Parse a Dockerfile into stages of instructions (comments dropped, `\` continuations joined). */
export function parseDockerfile(text: string): Dockerfile {
  const instructions: Instruction[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const start = i
    let line = lines[i]!
    if (/^\s*(#|$)/.test(line)) continue
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      i++
      const next = lines[i]!
      if (/^\s*#/.test(next)) continue
      line = line.replace(/\\\s*$/, ' ') + next.trim()
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line)
    if (m) instructions.push({ name: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start + 1 })
  }
  const globalArgs: Record<string, string> = {}
  const stages: Stage[] = []
  for (const ins of instructions) {
    if (ins.name === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)
      stages.push({ from: m?.[1] ?? ins.args, alias: m?.[2], instructions: [] })
    } else if (stages.length === 0 && ins.name === 'ARG') {
      const [k, v] = ins.args.split('=')
      globalArgs[k!] = v ?? ''
    } else stages[stages.length - 1]?.instructions.push(ins)
  }
  return { globalArgs, stages }
}

/** `COPY [--flags] SRC... DEST` → flags, sources, destination. */
export function parseCopy(args: string): { flags: Record<string, string>; sources: string[]; dest: string } {
  const words = args.split(/\s+/)
  const flags: Record<string, string> = {}
  while (words[0]?.startsWith('--')) {
    const [k, v] = words.shift()!.slice(2).split('=')
    flags[k!] = v ?? ''
  }
  const dest = words.pop()!
  return { flags, sources: words, dest }
}

// ---------------------------------------------------------------- .dockerignore

function dockerPatternToRegExp(pattern: string): RegExp {
  const p = pattern.replace(/^\/+/, '').replace(/\/+$/, '')
  let re = ''
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!
    if (c === '*' && p[i + 1] === '*') {
      if (p[i + 2] === '/') {
        re += '(?:.*/)?'
        i += 2
      } else {
        re += '.*'
        i += 1
      }
    } else if (c === '*') re += '[^/]*'
    else if (c === '?') re += '[^/]'
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
  }
  return new RegExp(`^${re}$`)
}

/**
 * Whether Docker leaves `path` out of the build context: patterns in order, the last match wins, `!`
 * re-includes, and a pattern that matches a parent directory matches everything below it.
 */
export function dockerignoreExcludes(dockerignore: string, path: string): boolean {
  const rules = dockerignore
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) =>
      l.startsWith('!')
        ? { negate: true, re: dockerPatternToRegExp(l.slice(1)) }
        : { negate: false, re: dockerPatternToRegExp(l) },
    )
  const parts = path.split('/')
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'))
  let excluded = false
  for (const r of rules) if (prefixes.some((p) => r.re.test(p))) excluded = !r.negate
  return excluded
}

export const readRepoFile = (rel: string): string => readFileSync(join(root, rel), 'utf8')
