import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { commandsOf, generateCertificate, MockUpstream, portOpen, ShellSession, shBlocks, waitFor, type CommandRun } from '@gatehouse/testing'
import { ensureBuilt, root } from './cli-helpers'
import { freePort } from './cluster-helpers'
import { docShellEnv } from './guide-helpers'
import { fakeKey } from './helpers'

// examples/mount-*/README.md and packages/security-check/README.md, executed: each walkthrough's sh
// blocks run as written, in order, in one bash session, from a scratch directory that links the
// checkout's files (so what an example writes, logs/ for one, never lands in the checkout). Only what a reader does besides typing is the test's:
// a command the README runs in a terminal of its own (a server in the foreground) runs as a
// background job of the session, its output in a file, and the test waits for its port; the
// session's PORT (and HTTP_PORT) are free ports, which the examples and the READMEs'
// `${PORT:-3000}` read; `npm ci` is left to this run's own install; files and values the README
// says the reader brings (a certificate, the key a server printed) are made by the test.

const LINKED = ['package.json', 'tsconfig.json', 'tsconfig.base.json', 'tsconfig.test.json', 'packages', 'examples', 'node_modules']
/** A command that starts an example's server. */
const SERVER = /\bexamples\/mount-[a-z-]+\/(?:server|app|index)\.[jt]s\b/

interface Walk {
  dir: string
  session: ShellSession
  ports: Record<string, number>
  /** What each started server printed so far. */
  serverOutput(): string
}

interface Walkthrough {
  readme: string
  /** The first block run (those before are another's: an npm install from the registry). @default 0 */
  from?: number
  /** What of the checkout the scratch directory links. @default LINKED */
  links?: string[]
  /** Ports the walkthrough reads from the environment. @default ['PORT'] */
  ports?: string[]
  /** What the reader brings before the first block. */
  prepare?: (w: Walk) => Promise<void>
  /** What the reader does once a server is up (read what it printed). */
  started?: (w: Walk) => Promise<void>
  check: (runs: CommandRun[], w: Walk) => void
  /** What the test checks after the blocks, in the same session. */
  after?: (w: Walk) => Promise<void>
}

const waitForPort = (port: number, open: boolean): Promise<number> =>
  waitFor(async () => (await portOpen(port)) === open, 30_000, { every: 100, what: `port ${port} to ${open ? 'open' : 'close'}` })

/** Each `… # NNN` command that printed a status line printed that status. */
function expectPromisedStatuses(runs: CommandRun[]): void {
  for (const run of runs) {
    const promised = /#\s*(\d{3})\b[^\n]*$/.exec(run.command)?.[1]
    const status = /^HTTP\/[\d.]+ (\d{3})/m.exec(run.stdout)?.[1]
    if (promised !== undefined && status !== undefined) expect(`${run.command} -> ${status}`).toBe(`${run.command} -> ${promised}`)
  }
}

async function walk(w: Walkthrough): Promise<CommandRun[]> {
  const dir = mkdtempSync(join(tmpdir(), 'gh-example-'))
  for (const name of w.links ?? LINKED) symlinkSync(join(root, name), join(dir, name))
  mkdirSync(join(dir, 'home'))
  const ports: Record<string, number> = {}
  for (const name of w.ports ?? ['PORT']) ports[name] = await freePort()
  const session = new ShellSession(dir, {
    ...docShellEnv(join(dir, 'home')),
    ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
  })
  let servers = 0
  const state: Walk = {
    dir,
    session,
    ports,
    serverOutput: () =>
      Array.from({ length: servers }, (_, i) => readFileSync(join(dir, `.server-${i}.log`), 'utf8')).join(''),
  }
  const runs: CommandRun[] = []
  // Job control, as in a terminal: each server a process group of its own, which `kill %1` (or the
  // test) signals whole, npx and the node it started alike; SIGINT reaches a background job.
  await session.run('set -m')
  const stopServers = (): Promise<unknown> => session.run('for p in $(jobs -p); do kill -- -$p; done 2>/dev/null; wait', 20_000)
  try {
    await w.prepare?.(state)
    for (const block of shBlocks(readFileSync(join(root, w.readme), 'utf8'), w.readme).slice(w.from ?? 0)) {
      for (const command of commandsOf(block)) {
        if (/^npm ci\b/.test(command)) continue
        if (SERVER.test(command) && !/&\s*(#.*)?$/.test(command)) {
          // Another terminal: first stop the server an earlier command started (one port each).
          if (servers > 0) {
            await stopServers()
            await waitForPort(ports.PORT!, false)
          }
          await session.run(`${command.replace(/\s+#.*$/, '')} > .server-${servers++}.log 2>&1 &`)
          await waitForPort(ports.PORT!, true).catch((e: unknown) => {
            throw new Error(`${String(e)}: "${command}" printed\n${state.serverOutput()}`)
          })
          await w.started?.(state)
          continue
        }
        const started = Date.now()
        const run = { section: block.section, ...(await session.run(command, 60_000)) }
        took.set(run, Date.now() - started)
        runs.push(run)
        if (run.code !== 0) throw new Error(`"${command}" exited ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}\nserver: ${state.serverOutput()}`)
      }
    }
    expectPromisedStatuses(runs)
    w.check(runs, state)
    await w.after?.(state)
    return runs
  } finally {
    await stopServers().catch(() => undefined)
    await session.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** How long each command took (ms). */
const took = new WeakMap<CommandRun, number>()

const output = (runs: CommandRun[], pattern: RegExp): string => {
  const run = runs.find((r) => pattern.test(r.command))
  if (!run) throw new Error(`the README no longer runs a command matching ${pattern}`)
  return run.stdout
}

let upstream: MockUpstream | undefined
const proxyKey = fakeKey('sk-proj-', 48)
const vaultKey = fakeKey('sk-ant-api03-', 93) + 'AA'
beforeAll(async () => {
  ensureBuilt()
  upstream = await MockUpstream.start()
}, 60_000)
afterAll(() => upstream?.close())

/** Every walkthrough, by README; docs-commands.test.ts names this file for their blocks. */
const WALKTHROUGHS: Walkthrough[] = [
  {
    readme: 'examples/mount-audit-log/README.md',
    check: (runs) => {
      const lines = output(runs, /^cat logs\/audit\.log/).split('\n').filter(Boolean)
      expect(lines.map((l) => (JSON.parse(l) as { event_type: string }).event_type)).toContain('auth_failure')
      // The token and the key in the URL are masked where they are written.
      expect(lines.join('\n')).not.toContain('not-a-real-token-123456')
      expect(lines.join('\n')).not.toContain('AIzaNotARealKey0000000000000000000000')
    },
  },
  {
    readme: 'examples/mount-client-auth/README.md',
    // "with the key it printed": the reader copies it into KEY.
    started: async (w) => {
      const key = /^issued key_\w+: (\S+)$/m.exec(w.serverOutput())?.[1]
      expect(key).toBeDefined()
      await w.session.run(`export KEY=${key!}`)
    },
    check: (runs) => {
      expect(JSON.parse(output(runs, /whoami"? +# \{/))).toEqual({ key_id: expect.stringMatching(/^key_[0-9a-f]+$/) as unknown })
      expect(output(runs, /# 401/)).toMatch(/^www-authenticate: Bearer/im)
    },
  },
  {
    readme: 'examples/mount-credential-vault/README.md',
    // The reader's key (one made up here) in anthropic-key.txt, and a provider address: the mock.
    prepare: async (w) => {
      writeFileSync(join(w.dir, 'anthropic-key.txt'), `${vaultKey}\n`, { mode: 0o600 })
      await w.session.run(`export ANTHROPIC_BASE_URL=${upstream!.url}`)
    },
    check: (runs, w) => {
      expect(JSON.parse(output(runs, /^curl /))).toMatchObject({ type: 'message' })
      expect(upstream!.requests.find((r) => r.path.startsWith('/v1/messages'))?.headers['x-api-key']).toBe(vaultKey)
      // Stored encrypted: the key is in no file of the vault.
      expect(output(runs, /add-credential/).trim()).toMatch(/^cred_\w+$/)
      expect(w.serverOutput()).not.toContain(vaultKey)
    },
  },
  {
    readme: 'examples/mount-hsts/README.md',
    ports: ['PORT', 'HTTP_PORT'],
    // "with your own certificate"
    prepare: (w) => {
      const cert = generateCertificate()
      writeFileSync(join(w.dir, 'tls.crt'), cert.cert)
      writeFileSync(join(w.dir, 'tls.key'), cert.key, { mode: 0o600 })
      return Promise.resolve()
    },
    check: (runs) => {
      expect(output(runs, /smoke\.js/)).toMatch(/^ok: /m)
      for (const path of ['/status', '/fail']) {
        const headers = output(runs, new RegExp(`https://\\S+${path} `))
        expect(headers).toMatch(/^strict-transport-security: max-age=\d+/im)
        expect(headers).toMatch(/^cache-control: no-store/im)
        expect(headers).not.toMatch(/^x-powered-by:/im)
      }
      expect(output(runs, /curl -si http:/)).toMatch(/^HTTP\/1\.1 403/m)
      expect(output(runs, /curl -si http:/)).toContain('HTTPS is required.')
    },
  },
  {
    readme: 'examples/mount-ip-filter/README.md',
    check: (runs) => {
      expect(output(runs, /^npx tsc -b packages\/ip-filter/) + output(runs, /smoke\.js/)).toMatch(/^ok: /m)
      expect(output(runs, /curl -s http:\S+\/admin\/denylist$/)).toContain('198.51.100.7')
    },
  },
  {
    readme: 'examples/mount-proxy/README.md',
    // The reader's key (one made up here), and the README's own way to point the example at another
    // provider address: the mock.
    prepare: async (w) => void (await w.session.run(`export OPENAI_API_KEY=${proxyKey} OPENAI_BASE_URL=${upstream!.url}`)),
    check: (runs) => {
      expect(upstream!.requests.at(-1)?.headers.authorization).toBe(`Bearer ${proxyKey}`)
      expect(JSON.parse(output(runs, /chat\/completions/))).toMatchObject({ object: 'chat.completion' })
      expect(upstream!.requests.filter((r) => r.path.startsWith('/v1/chat/completions')).length).toBeGreaterThan(0)
      expect(upstream!.requests.some((r) => r.path.startsWith('/v1/files'))).toBe(false)
    },
  },
  {
    readme: 'examples/mount-rate-limit/README.md',
    check: (runs) => {
      // Both servers of the first block start (one at a time: one port); the client block then runs
      // against the last, on Redis: the burst passes, the rest is 429.
      const burst = runs.filter((r) => /^seq 30 \| xargs/.test(r.command))
      expect(burst).toHaveLength(1)
      const c = Object.fromEntries([...burst[0]!.stdout.matchAll(/^\s*(\d+) (\d{3})$/gm)].map((m) => [m[2]!, Number(m[1])]))
      const ok = c['200'] ?? 0
      expect(ok + (c['429'] ?? 0)).toBe(30)
      // The burst of 20, plus 10 tokens a second for as long as the requests took to arrive (on a
      // loaded machine, spawning 30 curls alone can take a second).
      expect(ok).toBeGreaterThanOrEqual(20)
      expect(ok).toBeLessThanOrEqual(20 + Math.ceil((10 * took.get(burst[0]!)!) / 1000))
    },
  },
  {
    // In a git repository of the reader's: a clean tree (its TLS files ignored), one file staged.
    readme: 'packages/security-check/README.md',
    from: 1,
    links: ['node_modules'],
    prepare: async (w) => {
      const cert = generateCertificate({ days: 90 })
      mkdirSync(join(w.dir, 'auths'), { mode: 0o700 })
      writeFileSync(join(w.dir, 'auths', 'credentials.json'), '{}\n', { mode: 0o600 })
      mkdirSync(join(w.dir, 'tls'))
      writeFileSync(join(w.dir, 'tls', 'tls.crt'), cert.cert)
      writeFileSync(join(w.dir, 'tls', 'tls.key'), cert.key, { mode: 0o600 })
      writeFileSync(join(w.dir, '.gitignore'), 'node_modules\nhome/\ntls/\n.server-*.log\n')
      writeFileSync(join(w.dir, 'app.js'), 'console.log("hello")\n')
      mkdirSync(join(w.dir, 'ci'))
      const git = await w.session.run(
        'git init -q && git config user.email reader@example.com && git config user.name Reader && git add .gitignore app.js',
      )
      expect(git.code).toBe(0)
    },
    check: (runs) => {
      expect(output(runs, /permissions auths +#/)).toMatch(/^gatehouse-check permissions: ok /m)
      expect(output(runs, /permissions auths --fix/)).toMatch(/^gatehouse-check permissions: ok /m)
      expect(output(runs, /secrets +# the working tree/)).toMatch(/^gatehouse-check secrets: 0 findings/m)
      expect(output(runs, /secrets --staged/)).toMatch(/^gatehouse-check secrets: 0 findings in 2 files staged/m)
      expect(output(runs, /^npx gatehouse-check tls/)).toMatch(/^gatehouse-check tls: ok$/m)
      expect(output(runs, /all --no-audit/)).toMatch(/^ {2}tls +ok /m)
      expect(output(runs, /install-hook/)).toMatch(/^gatehouse-check install-hook: created .*pre-commit/m)
      // The dependencies' baseline: written once for review, then 0 new findings against it.
      expect(output(runs, /--write-baseline/)).toMatch(/^gatehouse-check secrets: wrote \d+ findings? to ci\/node-modules-baseline\.json/m)
      expect(output(runs, /secrets node_modules --baseline/)).toMatch(/^gatehouse-check secrets: 0 findings .*silenced 0 inline, \d+ by baseline/m)
    },
    // The hook at work: a staged credential stops the commit, a clean change goes in.
    after: async (w) => {
      const leaked = `${fakeKey('sk-ant-api03-', 93)}AA`
      writeFileSync(join(w.dir, 'leak.js'), `const key = '${leaked}'\n`)
      const refused = await w.session.run('git add leak.js && git commit -q -m leak')
      expect(refused.code).toBe(1)
      expect(refused.stdout + refused.stderr).toMatch(/^leak\.js:1:\d+ /m)
      expect(refused.stdout + refused.stderr).not.toContain(leaked)
      const clean = await w.session.run('git rm -q --cached leak.js && git commit -q -m app && git log --oneline | wc -l')
      expect(clean.stdout.trim()).toBe('1')
      const sarif = JSON.parse(readFileSync(join(w.dir, 'gatehouse-check.sarif'), 'utf8')) as { version: string; runs: { results: unknown[] }[] }
      expect([sarif.version, sarif.runs[0]!.results]).toEqual(['2.1.0', []])
    },
  },
  {
    readme: 'examples/mount-request-guard/README.md',
    check: (_runs, w) => expect(w.serverOutput()).toMatch(new RegExp(`^gateway on http://127\\.0\\.0\\.1:${w.ports.PORT}$`, 'm')),
  },
]

describe('example READMEs, executed as written', () => {
  it.each(WALKTHROUGHS.map((w) => [w.readme, w] as const))('%s', async (_readme, w) => {
    await walk(w)
  }, 120_000)
})
