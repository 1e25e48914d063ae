import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { CommandRun, ShellSession } from '@gatehouse/testing'
import { holdDocumentedPort, root, runCli, startCli, type Started } from './cli-helpers'
import { freePort, startRedis } from './cluster-helpers'
import {
  ask as askOn,
  auditLines as auditLinesOf,
  expectNoSecretIn,
  GUIDE_SECTIONS,
  guideBlocks,
  openGuideCheckout,
  portIsFree,
  ran,
  runBlocks,
  sectionBlocks,
  send as sendTo,
  sessionEnv,
  within,
  type AuditLine,
  type GuideCheckout,
  type Reply,
} from './guide-helpers'
import { fakeKey } from './helpers'

// docs/operator-guide.md, executed: every ```sh block of sections 1-5 of the guide (GUIDE_SECTIONS;
// the others are operator-guide-features.test.ts's), read from the guide at run time, runs in order in one bash session (so `export`s and variables carry over, as they would in an
// operator's terminal), in a temporary directory that looks like a checkout after
// `npm ci && npm run build`: a copy of config.example.yaml and a node_modules/.bin through which
// `npx gatehouse` and `npx --no-install gatehouse-check` reach this repository's built CLIs. Between
// "Deploy" and "Respond to an incident" the real gateway runs from that directory, and the test checks
// with real HTTP requests that each step does what the guide says it does.

const GUIDE_PORT = 8317

let port = GUIDE_PORT

/** One request to the gateway under test. */
const send = (method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<Reply> =>
  sendTo(port, method, path, headers, body)
/** A model request to one provider through the gateway under test, with a client key. */
const ask = (provider: string, key: string): Promise<Reply> => askOn(port, provider, key)

/** The sections this file runs (the guide's others are another test's: GUIDE_SECTIONS). */
const SECTIONS = Object.keys(GUIDE_SECTIONS).filter((s) => GUIDE_SECTIONS[s] === 'operator-guide.test.ts')
type Section = string

let guide: GuideCheckout | undefined
let dir: string | undefined
/** The directory the guide works in (it makes one of its own in "Deploy"). */
let work: string | undefined
let upstream: GuideCheckout['upstream'] | undefined
let session: ShellSession | undefined
let gateway: Started | undefined
/** Releases the documented port (see holdDocumentedPort). */
let releasePort: (() => void) | undefined
/** The session's environment after "Deploy" (what the guide exported). */
let env: Record<string, string> = {}
/** Every command of the guide that ran, with its output. */
let runs: CommandRun[] = []
let providerKeys: GuideCheckout['providerKeys'] = { ANTHROPIC_API_KEY: '', OPENAI_API_KEY: '', GEMINI_API_KEY: '' }
const client = { ciKey: '', ciId: '', probeKey: '' }
/** What section 4 was seen to do, in order. */
const effects: { action: string; details: Record<string, unknown> }[] = []

/** Run every block of a section, command by command; each must exit 0, as the guide implies. */
function runSection(section: Section, after?: (run: CommandRun) => Promise<void>): Promise<CommandRun[]> {
  // The guide assumes the gateway on 127.0.0.1:8317; only when that port was taken does the test
  // run on another one, and then the guide's commands are run with that port in place of 8317.
  const rewrite = (text: string): string =>
    port === GUIDE_PORT ? text : text.replaceAll(`127.0.0.1:${GUIDE_PORT}`, `127.0.0.1:${port}`)
  return runBlocks(guide!, sectionBlocks(section), { rewrite, ...(after ? { after } : {}) })
}

const auditLines = (): AuditLine[] => auditLinesOf(work!)

const errorMessage = (reply: Reply): string => {
  const body = JSON.parse(reply.body) as { error?: { message?: string } }
  return body.error?.message ?? ''
}

beforeAll(async () => {
  guide = await openGuideCheckout('gh-guide-')
  ;({ dir, session, upstream, providerKeys, runs } = guide)
}, 45_000)

afterAll(async () => {
  if (gateway && gateway.child.exitCode === null && gateway.child.signalCode === null) {
    gateway.child.kill('SIGKILL')
    await within(gateway.exited, 5000, undefined)
  }
  releasePort?.()
  await guide?.close()
}, 20_000)

describe('docs/operator-guide.md, executed end to end: deploy, harden, monitor', () => {
  it('has its sh blocks in the sections this test drives', () => {
    // Every section is some test's, in the guide's order; this file's come first.
    expect([...new Set(guideBlocks().map((b) => b.section))]).toEqual(Object.keys(GUIDE_SECTIONS))
    expect(Object.keys(GUIDE_SECTIONS).slice(0, SECTIONS.length)).toEqual(SECTIONS)
  })

  it('1. Deploy: config check passes; keys create writes a 0600 key file that keys list lists', async () => {
    const done = await runSection('1. Deploy')
    // The guide works in a directory of its own, inside the checkout.
    work = (await session!.run('pwd')).stdout.trim()
    expect(work).not.toBe(dir)
    expect(work.startsWith(`${dir!}/`)).toBe(true)
    expect(ran(done, /gatehouse config check/).stdout).toMatch(/^configuration OK \(.*config\.yaml\)$/m)

    const create = ran(done, /gatehouse keys create/)
    const name = /--name\s+(\S+)/.exec(create.command)![1]!
    const file = /(?:^|\s)>\s*([^\s);]+)/.exec(create.command)![1]!
    const id = /^created (key_\w+) \((\S+)\)/m.exec(create.stderr)
    expect(id?.[2]).toBe(name)
    client.ciId = id![1]!
    expect(statSync(join(work!, file)).mode & 0o777).toBe(0o600)
    client.ciKey = readFileSync(join(work!, file), 'utf8').trim()
    expect(client.ciKey).toMatch(/^gate_live_\S+$/)

    const list = ran(done, /gatehouse keys list/)
    expect(list.stdout).toMatch(new RegExp(`^${client.ciId}\\t${name}\\t\\S+\\tactive\\b`, 'm'))

    // What the guide exported, for the gateway and the checks that follow.
    env = await sessionEnv(guide!)
    expect(env.GATEHOUSE_ENCRYPTION_KEY).toMatch(/^[0-9a-f]{64}$/)
    expect(env.GATEHOUSE_AUDIT_KEY).toMatch(/^[0-9a-f]{64}$/)
    expect(env.GATEHOUSE_KEY_SALT).toMatch(/^[0-9a-f]{64}$/)
    expect(env.GATEHOUSE_MANAGEMENT_KEY).toMatch(/^[A-Za-z0-9]{32,}$/)
  }, 45_000)

  it(`the gateway starts from config.yaml with those variables on 127.0.0.1:${GUIDE_PORT} (another port if that one is taken)`, async () => {
    expect(client.ciKey).not.toBe('')
    // A key of the test's own, for every provider, to see providers answer (the guide revokes its first key).
    const probe = await runCli(['keys', 'create', '--name', 'guide-probe', '--config', 'config.yaml'], {
      cwd: work!,
      env,
    })
    expect(probe.code).toBe(0)
    client.probeKey = probe.stdout.trim()

    // The guide's address when it is free; otherwise (another process holds 8317) a free port through
    // GATEHOUSE_PORT, and the guide's commands are run with that port (see runSection).
    const start = (): Promise<Started> =>
      startCli(['--config', 'config.yaml'], {
        cwd: work!,
        env: port === GUIDE_PORT ? env : { ...env, GATEHOUSE_PORT: String(port) },
      })
    // The README quickstart's test runs a gateway on 8317 too: take turns with it.
    releasePort = await holdDocumentedPort()
    if (!(await portIsFree(GUIDE_PORT))) port = await freePort()
    try {
      gateway = await start()
    } catch (e) {
      if (port !== GUIDE_PORT || !/EADDRINUSE/.test(String(e))) throw e
      port = await freePort()
      gateway = await start()
    }
    expect(gateway.url).toBe(`http://127.0.0.1:${port}`)

    // Both client keys reach their provider, which gets the configured provider key; a wrong key is refused.
    const seen = upstream!.requests.length
    expect((await ask('claude', client.ciKey)).status).toBe(200)
    expect(upstream!.last?.headers['x-api-key']).toBe(providerKeys.ANTHROPIC_API_KEY)
    expect((await ask('openai', client.probeKey)).status).toBe(200)
    expect(upstream!.last?.headers.authorization).toBe(`Bearer ${providerKeys.OPENAI_API_KEY}`)
    expect(upstream!.requests.length).toBe(seen + 2)
    expect((await ask('claude', fakeKey('gate_live_', 43))).status).toBe(401)
  }, 45_000)

  it('2. Harden: doctor reports; gatehouse-check permissions and secrets pass', async () => {
    expect(gateway).toBeDefined()
    const done = await runSection('2. Harden')
    expect(ran(done, /gatehouse doctor/).stdout).toMatch(
      /^\d+ findings: \d+ high, \d+ medium, \d+ low \(.*config\.yaml\)$/m,
    )
    expect(ran(done, /gatehouse-check permissions auths/).stdout).toMatch(
      /^gatehouse-check permissions: ok \(\d+ files?, \d+ director(y|ies) checked\)$/m,
    )
    expect(ran(done, /gatehouse-check secrets config\.yaml/).stdout).toMatch(
      /^gatehouse-check secrets: 0 findings in 1 file scanned/m,
    )
  }, 45_000)

  it('3. Monitor: audit verify passes on the live log; the grep shows the authentication failure', async () => {
    expect(gateway).toBeDefined()
    const done = await runSection('3. Monitor')
    expect(ran(done, /gatehouse audit verify/).stdout).toMatch(/^audit log intact: \d+ lines in 1 file\(s\)/m)
    const failures = ran(done, /grep '"event_type":"auth_failure"'/)
      .stdout.split('\n')
      .filter(Boolean)
    expect(failures.length).toBeGreaterThan(0)
    for (const l of failures) expect(JSON.parse(l)).toMatchObject({ event_type: 'auth_failure' })
  }, 45_000)
})

describe('docs/operator-guide.md, executed end to end: respond to an incident', () => {
  it('4. Respond to an incident: each management call answers and has the effect it claims', async () => {
    expect(gateway).toBeDefined()
    const management = (path: string): Promise<Reply> =>
      send('GET', `/v0/management${path}`, { authorization: `Bearer ${env.GATEHOUSE_MANAGEMENT_KEY}` })
    const disabled = new Set<string>()
    // Under attack first: a local process guesses the management key until its address (all of
    // loopback) is banned, and a web page in the operator's browser sends CORS preflights. The
    // guide's calls below, with the right key, must still go through.
    for (let i = 0; i < 5; i++) {
      const guess = await send('GET', '/v0/management/keys', { authorization: `Bearer ${fakeKey('', 32)}`, 'x-request-id': `attack-guess-${i}` })
      expect(guess.status).toBe(401)
      const preflight = await send('OPTIONS', '/v0/management/security/ip-denylist', {
        origin: 'https://attacker.example',
        'access-control-request-method': 'POST',
        'x-request-id': `attack-preflight-${i}`,
      })
      expect(preflight.status).toBe(403)
    }
    expect((await send('GET', '/v0/management/keys', { authorization: `Bearer ${fakeKey('', 32)}`, 'x-request-id': 'attack-guess-5' })).status).toBe(429)
    // The effect of each call, read from the change it answers with and checked with real requests.
    await runSection('4. Respond to an incident', async (run) => {
      if (run.stdout === '') return
      const answer = JSON.parse(run.stdout) as Record<string, unknown>
      expect(answer).not.toHaveProperty('error')
      if (typeof answer.ip === 'string') {
        const list = JSON.parse((await management('/security/ip-denylist')).body) as {
          entries: { ip: string; reason?: string }[]
        }
        expect(list.entries.map((e) => e.ip)).toContain(answer.ip)
        effects.push({ action: 'denylist_add', details: { entry: answer.ip } })
      } else if (typeof answer.revoked_at === 'string') {
        // The guide's first key is the one it created in "Deploy"; it no longer gets in.
        expect(answer.id).toBe(client.ciId)
        expect((await ask('claude', client.ciKey)).status).toBe(401)
        effects.push({ action: 'key_revoked', details: { key_id: answer.id } })
      } else if (typeof answer.provider === 'string' && typeof answer.enabled === 'boolean') {
        const seen = upstream!.requests.length
        const reply = await ask(answer.provider, client.probeKey)
        if (answer.enabled) {
          expect(reply.status).toBe(200)
          expect(upstream!.requests.length).toBe(seen + 1)
        } else {
          expect(reply.status).toBe(503)
          expect(errorMessage(reply)).toBe(
            /"message":"([^"]*)"/.exec(run.command)?.[1] ??
              `Provider ${answer.provider} is temporarily disabled`,
          )
          expect(upstream!.requests.length).toBe(seen)
        }
        if (answer.enabled) disabled.delete(answer.provider)
        else disabled.add(answer.provider)
        effects.push({
          action: 'provider_switch',
          details: { provider: answer.provider, enabled: answer.enabled },
        })
      } else if (typeof answer.enabled === 'boolean' && typeof answer.message === 'string') {
        // Maintenance stops every provider: one that is not switched off shows it.
        const reply = await ask(disabled.has('claude') ? 'openai' : 'claude', client.probeKey)
        if (answer.enabled) {
          expect(reply.status).toBe(503)
          expect(reply.body).toContain(answer.message)
        } else expect(reply.status).toBe(200)
        effects.push({ action: 'maintenance', details: { enabled: answer.enabled } })
      } else throw new Error(`the test does not know how to check this answer: ${run.stdout}`)
    })
    expect(effects.map((e) => `${e.action} ${JSON.stringify(e.details)}`)).toEqual([
      'denylist_add {"entry":"203.0.113.7"}',
      `key_revoked {"key_id":"${client.ciId}"}`,
      'provider_switch {"provider":"openai","enabled":false}',
      'maintenance {"enabled":true}',
      'maintenance {"enabled":false}',
      'provider_switch {"provider":"openai","enabled":true}',
    ])
    // Recovered: both providers answer again.
    expect((await ask('openai', client.probeKey)).status).toBe(200)
    expect((await ask('claude', client.probeKey)).status).toBe(200)
  }, 45_000)
})

describe('docs/operator-guide.md, executed end to end: stop, what was written, several gateways', () => {
  it('SIGTERM exits 0; every change is a config_change line of a verified log; no secret in any output', async () => {
    expect(gateway).toBeDefined()
    gateway!.child.kill('SIGTERM')
    expect(await within(gateway!.exited, 10_000, 'no exit in 10 s')).toBe(0)
    releasePort?.()
    releasePort = undefined

    const lines = auditLines()
    // Every change of section 4, in order, as a config_change line by the management API, made
    // through a request that succeeded (the gateway's own config_change lines, from its start, aside).
    const changes = lines.filter((l) => l.event_type === 'config_change' && l.user_id === 'management')
    expect(changes.map((l) => ({ action: l.result, details: l.details }))).toEqual(
      effects.map((e) => ({ action: e.action, details: expect.objectContaining(e.details) as unknown })),
    )
    // The attacker's requests of section 4 aside: refused, as they should be.
    const requests = lines.filter(
      (l) =>
        l.event_type === 'provider_request' &&
        String(l.details?.path).startsWith('/v0/management') &&
        !String(l.details?.client_request_id).startsWith('attack-'),
    )
    const ok = (r: AuditLine | undefined): boolean =>
      typeof r?.details?.status === 'number' && r.details.status >= 200 && r.details.status < 300
    for (const c of changes) expect(ok(requests.find((r) => r.request_id === c.request_id))).toBe(true)
    expect(
      requests.filter((r) => !ok(r)).map((r) => `${String(r.details?.path)} ${String(r.details?.status)}`),
    ).toEqual([])
    // "ids are in the audit log's user_id field"
    expect(lines.some((l) => l.user_id === client.ciId)).toBe(true)

    const verify = await runCli(['audit', 'verify', 'logs/audit.log', '--config', 'config.yaml'], {
      cwd: work!,
      env,
    })
    expect(verify.stdout).toMatch(/^audit log intact: /)
    expect(verify.code).toBe(0)

    expectNoSecretIn(
      {
        GATEHOUSE_MANAGEMENT_KEY: env.GATEHOUSE_MANAGEMENT_KEY,
        GATEHOUSE_ENCRYPTION_KEY: env.GATEHOUSE_ENCRYPTION_KEY,
        GATEHOUSE_AUDIT_KEY: env.GATEHOUSE_AUDIT_KEY,
        GATEHOUSE_KEY_SALT: env.GATEHOUSE_KEY_SALT,
        ...providerKeys,
        'the ci-pipeline client key': client.ciKey,
        'the probe client key': client.probeKey,
      },
      [
        ...runs.map((r): [string, string] => [`"${r.command}"`, r.stdout + r.stderr]),
        ['the gateway', gateway!.output().stdout + gateway!.output().stderr],
        ['the audit log', readFileSync(join(work!, 'logs', 'audit.log'), 'utf8')],
        ['audit verify', verify.stdout + verify.stderr],
      ],
    )
  }, 45_000)

  it("the repository's .gitignore covers every file the guide and the gateway wrote", () => {
    writeFileSync(join(dir!, '.gitignore'), readFileSync(join(root, '.gitignore')))
    const git = (...args: string[]): string => {
      const r = spawnSync('git', args, { cwd: dir!, encoding: 'utf8', timeout: 10_000 })
      if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`)
      return r.stdout
    }
    git('init', '-q')
    const untracked = git('status', '--porcelain', '--untracked-files=all')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.slice(3))
      // What stands for the checkout itself, and the test's own HOME.
      .filter((f) => f !== '.gitignore' && f !== 'config.example.yaml' && !f.startsWith('home/'))
    expect(untracked).toEqual([])
    expect(existsSync(join(work!, 'ci-pipeline.key'))).toBe(true)
    expect(existsSync(join(work!, 'auths', 'client-keys.json'))).toBe(true)
  })

  it('5. Run several gateways: the keys move to Redis as they are; two gateways on it serve them, and doctor lists both in step', async () => {
    // The example's store.url points at this machine's Redis; the test gives the guide a Redis of
    // its own instead, so nothing it writes meets another test's or anyone's state.
    const redisPort = await freePort()
    const redis = await startRedis(redisPort)
    const started: Started[] = []
    try {
      const config = join(work!, 'config.yaml')
      writeFileSync(config, readFileSync(config, 'utf8').replace('redis://127.0.0.1:6379', `redis://127.0.0.1:${redisPort}`))
      const done = await runSection('5. Run several gateways', async (run) => {
        if (/doctor/.test(run.command)) expect(run.stdout).toMatch(/^cluster: keys version \d+, runtime version \d+, credentials version \d+, \d+ replicas? reporting$/m)
      })
      expect(ran(done, /gatehouse config check/).stdout).toMatch(/^configuration OK/m)
      const listedBefore = (JSON.parse((await runCli(['keys', 'list', '--json', '--config', 'config.yaml'], { cwd: work!, env })).stdout) as Array<{ id: string }>).map((k) => k.id)
      expect(ran(done, /keys migrate/).stdout).toMatch(new RegExp(`^migrated ${listedBefore.length} keys? to Redis`, 'm'))
      // The upstream credentials too: the dry run writes nothing, the run reports what it moved.
      expect(ran(done, /vault migrate --to redis --dry-run/).stdout).toMatch(/^\d+ would be moved to Redis, 0 already there, 0 conflicting, 0 failed/m)
      expect(ran(done, /vault migrate --to redis --config/).stdout).toMatch(/^\d+ moved to Redis, 0 already there, 0 conflicting, 0 failed/m)
      // Two gateways on the cluster config: the probe key issued in section 1 works on both.
      for (let i = 0; i < 2; i++) started.push(await startCli(['--config', 'config.yaml'], { cwd: work!, env: { ...env, GATEHOUSE_PORT: '0', GATEHOUSE_METRICS_PORT: '0' } }))
      const saved = port
      try {
        for (const g of started) {
          port = Number(new URL(g.url).port)
          expect((await ask('openai', client.probeKey)).status).toBe(200)
          // The ci-pipeline key revoked in section 4 stays revoked in the cluster.
          expect((await ask('claude', client.ciKey)).status).toBe(401)
        }
      } finally {
        port = saved
      }
      const doctor = await runCli(['doctor', '--json', '--config', 'config.yaml'], { cwd: work!, env })
      const cluster = (JSON.parse(doctor.stdout) as { cluster: { replicas: Array<{ pid: number; state: string }> } }).cluster
      expect(cluster.replicas.map((r) => r.pid).sort()).toEqual(started.map((g) => g.child.pid).sort())
    } finally {
      for (const g of started) g.child.kill('SIGTERM')
      await Promise.all(started.map((g) => g.exited))
      redis.kill('SIGKILL')
    }
  }, 60_000)
})
