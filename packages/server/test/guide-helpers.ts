import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { commandsOf, httpRequest, MockUpstream, ShellSession, shBlocks, type Block, type CommandRun } from '@gatehouse/testing'
import { ensureBuilt, root } from './cli-helpers'
import { freePort } from './cluster-helpers'
import { anthropicBody, fakeKey, openaiBody } from './helpers'

// What the tests that execute docs/operator-guide.md share: the guide's blocks by section, which
// test runs each section, and a scratch checkout with one bash session to run them in.

export const GUIDE = join(root, 'docs', 'operator-guide.md')

/**
 * Each `## ` section of the guide and the test that runs all of its sh blocks, as written and in
 * order (docs-commands.test.ts reads this: a block added to a section is run by that section's test).
 */
export const GUIDE_SECTIONS: Readonly<Record<string, string>> = {
  '1. Deploy': 'operator-guide.test.ts',
  '2. Harden': 'operator-guide.test.ts',
  '3. Monitor': 'operator-guide.test.ts',
  '4. Respond to an incident': 'operator-guide.test.ts',
  '5. Run several gateways': 'operator-guide.test.ts',
  '6. Bind client keys to networks': 'operator-guide-features.test.ts',
  '7. Rotate a client key with a grace period': 'operator-guide-features.test.ts',
  '8. Let clients in with JWTs': 'operator-guide-features.test.ts',
  '9. Ship the audit log to syslog': 'operator-guide-features.test.ts',
}

export const guideBlocks = (): Block[] => shBlocks(readFileSync(GUIDE, 'utf8'), GUIDE)

/** The sh blocks under one `## ` heading of the guide; fails when the heading has none. */
export function sectionBlocks(section: string): Block[] {
  const mine = guideBlocks().filter((b) => b.section === section)
  if (mine.length === 0) throw new Error(`docs/operator-guide.md has no sh block under "## ${section}": update the test`)
  return mine
}

export const portIsFree = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const probe = net.createServer()
    probe.once('error', () => resolve(false))
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)))
  })

/** `promise`'s value, or `fallback` after `ms`. */
export async function within<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<F>((r) => (timer = setTimeout(() => r(fallback), ms)))])
  } finally {
    clearTimeout(timer)
  }
}

export interface Reply {
  status: number
  body: string
}

/** One request to the gateway on `port`, on its own connection, answered within 5 s. */
export async function send(port: number, method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<Reply> {
  const data = body === undefined ? undefined : JSON.stringify(body)
  const reply = await httpRequest(`http://127.0.0.1:${port}`, { method, path, timeoutMs: 5000, headers: { ...headers, ...(data !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(data !== undefined ? { body: data } : {}) })
  return { status: reply.status, body: reply.body }
}

/** A model request to one provider through the gateway on `port`, with a client key (or token). */
export function ask(port: number, provider: string, key: string, headers: Record<string, string> = {}): Promise<Reply> {
  if (provider === 'claude') return send(port, 'POST', '/v1/messages', { ...headers, 'x-api-key': key }, anthropicBody())
  if (provider === 'openai')
    return send(port, 'POST', '/v1/chat/completions', { ...headers, authorization: `Bearer ${key}` }, openaiBody())
  throw new Error(`the test has no request for provider ${JSON.stringify(provider)}: add one to ask()`)
}

export interface AuditLine {
  event_type: string
  user_id?: string
  request_id?: string
  result?: string
  seq?: number
  details?: Record<string, unknown>
}

export function auditLines(work: string): AuditLine[] {
  return readFileSync(join(work, 'logs', 'audit.log'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditLine)
}

/** The last command of `runsOf` matching `pattern`; fails when the guide no longer has one. */
export function ran(runsOf: CommandRun[], pattern: RegExp): CommandRun {
  const run = runsOf.filter((r) => pattern.test(r.command)).pop()
  if (!run) throw new Error(`the guide no longer runs a command matching ${pattern}; update this test`)
  return run
}

/**
 * The environment of a bash session that runs docs as a reader would, from a scratch directory:
 * this node first on PATH, `home` as HOME (npm's cache in it), and npx that runs what is installed
 * and never reaches for the registry.
 */
export const docShellEnv = (home: string): NodeJS.ProcessEnv => ({
  PATH: `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`,
  HOME: home,
  TMPDIR: tmpdir(),
  LANG: 'C.UTF-8',
  npm_config_offline: 'true',
  npm_config_yes: 'false',
  npm_config_update_notifier: 'false',
  npm_config_cache: join(home, '.npm'),
})

/** A scratch checkout for the guide, with the bash session that runs it. */
export interface GuideCheckout {
  /** The scratch directory (the guide makes its own working directory inside). */
  dir: string
  session: ShellSession
  upstream: MockUpstream
  /** Provider keys, generated per run: nothing real is ever used. */
  providerKeys: { ANTHROPIC_API_KEY: string; OPENAI_API_KEY: string; GEMINI_API_KEY: string }
  /** Every command of the guide that ran, with its output. */
  runs: CommandRun[]
  close(): Promise<void>
}

/**
 * A temporary directory that looks like a checkout after `npm ci && npm run build`: a copy of
 * config.example.yaml with its providers pointed at a mock upstream (so no request leaves this
 * machine; and, only if 9090 is taken, its metrics on a free port), and a node_modules/.bin through
 * which `npx gatehouse` and `npx --no-install gatehouse-check` reach this repository's built CLIs.
 */
export async function openGuideCheckout(prefix: string): Promise<GuideCheckout> {
  ensureBuilt()
  for (const [tool, args] of [
    ['bash', ['--version']],
    ['openssl', ['version']],
    ['curl', ['--version']],
    ['npx', ['--version']],
  ] as const) {
    if (spawnSync(tool, args, { timeout: 10_000 }).status !== 0) {
      throw new Error(`docs/operator-guide.md runs \`${tool}\`, which is not on PATH: install it to run this test`)
    }
  }
  const upstream = await MockUpstream.start()
  const dir = mkdtempSync(join(tmpdir(), prefix))
  let example = readFileSync(join(root, 'config.example.yaml'), 'utf8')
  if (example.match(/^(\s+base_url:\s*)https:\/\/\S+/gm)?.length !== 3) {
    throw new Error('config.example.yaml no longer has one https base_url per provider: update this test')
  }
  example = example.replace(/^(\s+base_url:\s*)https:\/\/\S+/gm, `$1${upstream.url}`)
  if (!(await portIsFree(9090))) example = example.replace(/^(\s+port:\s*)9090\b/m, `$1${await freePort()}`)
  writeFileSync(join(dir, 'config.example.yaml'), example)
  // `npx` looks for a command in ./node_modules/.bin: link the repository's, where npm ci put
  // `gatehouse` and `gatehouse-check`.
  mkdirSync(join(dir, 'node_modules'))
  symlinkSync(join(root, 'node_modules', '.bin'), join(dir, 'node_modules', '.bin'))
  mkdirSync(join(dir, 'home'))
  const providerKeys = {
    ANTHROPIC_API_KEY: fakeKey('sk-ant-api03-', 60),
    OPENAI_API_KEY: fakeKey('sk-proj-', 60),
    GEMINI_API_KEY: fakeKey('AIza', 35),
  }
  const session = new ShellSession(dir, { ...docShellEnv(join(dir, 'home')), ...providerKeys })
  return {
    dir,
    session,
    upstream,
    providerKeys,
    runs: [],
    close: async () => {
      await session.close()
      await upstream.close()
      if (existsSync(join(dir, 'node_modules', '.bin'))) unlinkSync(join(dir, 'node_modules', '.bin'))
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/**
 * Run blocks of the guide command by command in the checkout's session; each must exit 0, as the
 * guide implies, and a `npx` command must print something (every gatehouse command reports what it
 * did). `rewrite` may change what must differ in a test (a port); `after` checks each command.
 */
export async function runBlocks(
  checkout: GuideCheckout,
  blocks: Block[],
  opts: { rewrite?: (text: string) => string; after?: (run: CommandRun) => Promise<void> } = {},
): Promise<CommandRun[]> {
  const done: CommandRun[] = []
  for (const block of blocks) {
    const text = opts.rewrite ? opts.rewrite(block.text) : block.text
    for (const command of commandsOf({ section: block.section, text })) {
      const run = { section: block.section, ...(await checkout.session.run(command)) }
      checkout.runs.push(run)
      done.push(run)
      if (run.code !== 0) throw new Error(`"${command}" exited ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`)
      // (An assignment `X=$(npx …)` keeps what it printed.)
      if (/\bnpx\s/.test(command) && !/^\w+=\$\(/.test(command) && `${run.stdout}${run.stderr}`.trim() === '') {
        throw new Error(`"${command}" printed nothing: every gatehouse command reports what it did, so it did not run`)
      }
      await opts.after?.(run)
    }
  }
  return done
}

/** The session's environment (what the guide exported so far), for the gateway and the CLI. */
export async function sessionEnv(checkout: GuideCheckout): Promise<Record<string, string>> {
  const dump = await checkout.session.run(`node -e 'process.stdout.write(JSON.stringify(process.env))'`)
  return JSON.parse(dump.stdout) as Record<string, string>
}

/** No secret appears in any output: each of `secrets` (name → value) is looked for in each of `outputs`. */
export function expectNoSecretIn(secrets: Record<string, string | undefined>, outputs: [string, string][]): void {
  for (const [name, secret] of Object.entries(secrets)) {
    if (!secret || secret.length < 16) throw new Error(`${name}: not a secret the test can look for`)
    for (const [where, text] of outputs) if (text.includes(secret)) throw new Error(`${name} appears in the output of ${where}`)
  }
}
