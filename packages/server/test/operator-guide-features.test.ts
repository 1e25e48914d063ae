import { randomBytes } from 'node:crypto'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose'
import { generateCertificate, sleep, SyslogReceiver, waitFor, type CommandRun } from '@gatehouse/testing'
import { startCli, type Started } from './cli-helpers'
import { freePort } from './cluster-helpers'
import {
  ask,
  auditLines,
  expectNoSecretIn,
  GUIDE_SECTIONS,
  openGuideCheckout,
  ran,
  runBlocks,
  sectionBlocks,
  sessionEnv,
  within,
  type GuideCheckout,
} from './guide-helpers'
import { fakeKey } from './helpers'

// docs/operator-guide.md, sections 6-9 (keys bound to networks, key rotation with a grace period,
// JWT clients, audit shipping to syslog), executed as written: in a scratch checkout of their own,
// after the guide's "1. Deploy" (run as written too), in one bash session. Between blocks the test
// does what the guide tells the operator to do besides typing them (restart the gateway, which runs
// as a real process on a free port given to the guide through its own `${GATEHOUSE:-…}`), and plays
// the outside world the guide names through the variables it reads: an identity provider with a JWKS
// (OIDC_ISSUER, OIDC_TOKEN_URL, …), a syslog receiver over TLS (SYSLOG_HOST, SYSLOG_PORT), a short
// grace (GRACE). Each status the guide's comments promise (`ask … # 200`) is checked.

const MINE = Object.keys(GUIDE_SECTIONS).filter((s) => GUIDE_SECTIONS[s] === 'operator-guide-features.test.ts')
const [NETWORKS, ROTATION, JWT, SYSLOG] = MINE as [string, string, string, string]

let guide: GuideCheckout | undefined
/** The guide's working directory (made in "Deploy"). */
let work = ''
/** What the guide exported in "Deploy": the gateway's secrets. */
let env: Record<string, string> = {}
let port = 0
let gateway: Started | undefined
/** Every gateway started, for the secrecy check. */
const gateways: Started[] = []
const secrets: Record<string, string> = {}

beforeAll(async () => {
  guide = await openGuideCheckout('gh-guide-features-')
  await runBlocks(guide, sectionBlocks('1. Deploy'))
  work = (await guide.session.run('pwd')).stdout.trim()
  env = await sessionEnv(guide)
  port = await freePort()
  // The gateway's address, through the variable the guide reads (`GATEHOUSE=${GATEHOUSE:-…}`).
  await guide.session.run(`export GATEHOUSE=http://127.0.0.1:${port}`)
}, 60_000)

afterAll(async () => {
  if (gateway && gateway.child.exitCode === null && gateway.child.signalCode === null) {
    gateway.child.kill('SIGKILL')
    await within(gateway.exited, 5000, undefined)
  }
  await guide?.close()
}, 20_000)

/** Stop the running gateway (SIGTERM: it drains and exits 0). */
async function stopGateway(): Promise<void> {
  if (!gateway) return
  gateway.child.kill('SIGTERM')
  expect(await within(gateway.exited, 10_000, 'no exit in 10 s')).toBe(0)
  gateway = undefined
}

/** "Restart the gateway", as the guide says after each change of config.yaml. */
async function restartGateway(): Promise<void> {
  await stopGateway()
  gateway = await startCli(['--config', 'config.yaml'], {
    cwd: work,
    env: { ...env, GATEHOUSE_PORT: String(port), GATEHOUSE_METRICS_PORT: '0' },
  })
  gateways.push(gateway)
}

/** Run blocks; each `ask …  # NNN` must print the status its comment promises. */
async function runChecked(blocks: { section: string; text: string }[]): Promise<CommandRun[]> {
  return runBlocks(guide!, blocks, {
    after: (run) => {
      const promised = /^ask\b[^#\n]*#\s*(\d{3})\b/.exec(run.command)?.[1]
      if (promised !== undefined) expect(`${run.command} -> ${run.stdout.trim()}`).toBe(`${run.command} -> ${promised}`)
      return Promise.resolve()
    },
  })
}

const fileOf = (name: string): string => readFileSync(join(work, name), 'utf8').trim()
const lastJson = (run: CommandRun): Record<string, unknown> => JSON.parse(run.stdout.trim().split('\n').pop()!) as Record<string, unknown>

describe('docs/operator-guide.md, executed: client access and audit shipping (sections 6-9)', () => {
  it('6. Bind client keys to networks: the key works from its networks (through the trusted proxy) and is refused elsewhere as unknown', async () => {
    const [setup, check, ...rest] = sectionBlocks(NETWORKS)
    expect(rest).toEqual([])
    const done = await runChecked([setup!])
    expect(readFileSync(join(work, 'config.yaml'), 'utf8')).toMatch(/^ {2}trust_proxy: 1\b/m)
    const id = /^created (key_\w+) \(office-batch\)/m.exec(ran(done, /keys create/).stderr)?.[1]
    expect(id).toBeDefined()
    expect(statSync(join(work, 'office-batch.key')).mode & 0o777).toBe(0o600)
    expect(ran(done, /keys list/).stdout).toMatch(new RegExp(`^${id}\\toffice-batch\\t.*active`, 'm'))
    secrets['the office-batch key'] = fileOf('office-batch.key')

    await restartGateway()
    const seen = guide!.upstream.requests.length
    const checked = await runChecked([check!])
    // One request reached the provider: the one from 10.1.2.3.
    expect(guide!.upstream.requests.length).toBe(seen + 1)
    expect(lastJson(ran(checked, /network_not_allowed/))).toMatchObject({ event_type: 'auth_failure', user_id: id, result: 'network_not_allowed' })
  }, 60_000)

  it('7. Rotate a client key: old and successor both work during the grace; after it only the successor', async () => {
    const [rotate, after, ...rest] = sectionBlocks(ROTATION)
    expect(rest).toEqual([])
    // A grace the test can wait for, through the variable the guide reads (long enough for the
    // block's commands after the rotation to run within it on a loaded machine).
    await guide!.session.run('export GRACE=12s')
    const oldId = /^(key_\w+)\toffice-batch\t/m.exec((await guide!.session.run('npx gatehouse keys list --config config.yaml')).stdout)?.[1]
    const done = await runChecked([rotate!])
    const rotated = /^rotated (key_\w+) \(office-batch\) to (key_\w+);/m.exec(ran(done, /keys rotate/).stderr)
    expect(rotated?.[1]).toBe(oldId)
    const newId = rotated![2]!
    expect(statSync(join(work, 'office-batch.next.key')).mode & 0o777).toBe(0o600)
    secrets['the successor key'] = fileOf('office-batch.next.key')
    const until = new RegExp(`^${oldId}\\toffice-batch\\t\\S+\\trotated to ${newId}, valid until (\\S+)`, 'm').exec(ran(done, /keys list/).stdout)?.[1]
    const graceEnds = Date.parse(until ?? '')
    expect(graceEnds).toBeGreaterThan(Date.now())
    // The successor has the old key's networks: refused from elsewhere.
    expect((await ask(port, 'openai', secrets['the successor key'], { 'x-forwarded-for': '203.0.113.9' })).status).toBe(401)

    await sleep(Math.min(15_000, Math.max(0, graceEnds + 300 - Date.now())))
    const expired = await runChecked([after!])
    expect(lastJson(ran(expired, /expired_key/))).toMatchObject({ event_type: 'auth_failure', user_id: oldId, result: 'expired_key' })
    // `mv`: office-batch.key is the successor now, and works.
    expect(fileOf('office-batch.key')).toBe(secrets['the successor key'])
    expect((await ask(port, 'openai', fileOf('office-batch.key'), { 'x-forwarded-for': '10.1.2.3' })).status).toBe(200)
  }, 60_000)

  it('8. JWT clients: a token from the JWKS issuer works; the issuer rotates its key (RS256 to ES256) and both tokens keep working, no restart', async () => {
    const [setup, call, ...rest] = sectionBlocks(JWT)
    expect(rest).toEqual([])
    const idp = await startIdentityProvider()
    try {
      secrets['the OIDC client secret'] = idp.clientSecret
      await guide!.session.run(
        `export OIDC_ISSUER=${idp.issuer} OIDC_TOKEN_URL=${idp.issuer}/oauth/token OIDC_CLIENT_ID=${idp.clientId} OIDC_CLIENT_SECRET=${idp.clientSecret}`,
      )
      expect(ran(await runChecked([setup!]), /config check/).stdout).toMatch(/^configuration OK/m)
      const jwt = /^ {2}jwt:\n((?: {4}.*\n)+)/m.exec(readFileSync(join(work, 'config.yaml'), 'utf8'))?.[1] ?? ''
      expect(jwt).toContain('    enabled: true\n')
      expect(jwt).toContain(`    jwks_uri: "${idp.issuer}/.well-known/jwks.json"\n`)

      await restartGateway()
      const pid = gateway!.child.pid
      const first = await runChecked([call!])
      expect(lastJson(ran(first, /jwt:/))).toMatchObject({ user_id: `jwt:${idp.clientId}` })
      expect(auditLines(work).some((l) => l.event_type === 'auth_success' && l.user_id === `jwt:${idp.clientId}`)).toBe(true)
      expect(idp.issued.map((t) => t.alg)).toEqual(['RS256'])
      expect(idp.jwksFetches()).toBeGreaterThan(0)

      // The issuer rotates: it signs with the key it published beside the old one (ES256).
      idp.rotate()
      await runChecked([call!])
      expect(idp.issued.map((t) => t.alg)).toEqual(['RS256', 'ES256'])
      // The token signed before the rotation still works, on the same gateway process.
      expect((await ask(port, 'openai', idp.issued[0]!.token)).status).toBe(200)
      expect(gateway!.child.pid).toBe(pid)
      // A token the issuer never signed (a key of the caller's own, under the issuer's key id) does not.
      expect((await ask(port, 'openai', await idp.forged())).status).toBe(401)
      idp.issued.forEach((t, i) => (secrets[`token ${i}`] = t.token))
      // Tokens reach no log: the audit log names the caller, never the token.
      expect(readFileSync(join(work, 'logs', 'audit.log'), 'utf8')).not.toContain(idp.issued[0]!.token)
    } finally {
      await stopGateway()
      await idp.close()
    }
  }, 60_000)

  it('9. Ship the audit log to syslog: every line reaches the receiver across its restart; audit verify flags the log cut by 10 lines', async () => {
    const [setup, verify, ...rest] = sectionBlocks(SYSLOG)
    expect(rest).toEqual([])
    const cert = generateCertificate({ altNames: ['127.0.0.1'] })
    const receiver = new SyslogReceiver(cert)
    try {
      const receiverPort = await receiver.start()
      // "Save the receiver's CA certificate next to config.yaml as syslog-ca.pem".
      writeFileSync(join(work, 'syslog-ca.pem'), cert.cert)
      await guide!.session.run(`export SYSLOG_HOST=127.0.0.1 SYSLOG_PORT=${receiverPort}`)
      expect(ran(await runChecked([setup!]), /config check/).stdout).toMatch(/^configuration OK/m)
      expect(statSync(join(work, 'auths', 'checkpoint-signing-key.pem')).mode & 0o777).toBe(0o600)

      await restartGateway()
      const key = fileOf('office-batch.key')
      const traffic = async (n: number): Promise<void> => {
        for (let i = 0; i < n; i++) {
          const reply = await ask(port, 'openai', i % 3 === 2 ? fakeKey('gate_live_', 43) : key, { 'x-forwarded-for': '10.1.2.3' })
          expect(reply.status).toBe(i % 3 === 2 ? 401 : 200)
        }
      }
      const lastSeq = (): number => auditLines(work).at(-1)!.seq!
      const received = (seq: number): boolean => receiver.lines().some((l) => (JSON.parse(l) as { seq: number }).seq === seq)
      const arrived = (seq: number): Promise<number> => waitFor(() => received(seq), 15_000, { every: 100, what: `line ${seq} at the receiver` })
      await traffic(6)
      await arrived(lastSeq())

      // The receiver goes away; the gateway keeps serving and queues what it writes.
      await receiver.stop()
      await traffic(9)
      const writtenWhileAway = lastSeq()
      expect(received(writtenWhileAway)).toBe(false)
      // It comes back on the same address: the queue is sent.
      await receiver.start(receiverPort)
      await arrived(writtenWhileAway)
      await traffic(3)
      await stopGateway()

      // Every line the gateway wrote since shipping began arrived, in order, the closing checkpoint last.
      const shipped = receiver.lines()
      const firstSeq = (JSON.parse(shipped[0]!) as { seq: number }).seq
      const local = readFileSync(join(work, 'logs', 'audit.log'), 'utf8').split('\n').filter(Boolean)
      const since = local.filter((l) => (JSON.parse(l) as { seq: number }).seq >= firstSeq)
      expect(shipped).toEqual(since)
      expect(since.length).toBeGreaterThan(18)
      // The last line is the checkpoint the gateway writes when it stops: it vouches for the whole tail.
      expect(shipped.at(-1)).toMatch(/^\{"timestamp":"[^"]+","checkpoint":\{/)
      expectNoSecretIn({ ...secrets, ...guide!.providerKeys }, [['the syslog receiver', receiver.plaintext]])

      // The operator saves what the receiver holds as shipped.ndjson, and runs the guide's checks.
      writeFileSync(join(work, 'shipped.ndjson'), `${shipped.join('\n')}\n`)
      const checked = await runChecked([verify!])
      expect(ran(checked, /audit verify logs\/audit\.log/).stdout).toMatch(/^audit log intact: .*; matches \d+ checkpoint\(s\), the newest at seq \d+$/m)
      const cut = ran(checked, /audit verify cut\.log/)
      expect(cut.stdout).toMatch(/^audit log TAMPERED: .*10 line\(s\) were cut from the end/m)
      expect(cut.stdout).toMatch(/^cut\.log: tampered, as it should be$/m)
      expect(readFileSync(join(work, 'cut.log'), 'utf8').split('\n').filter(Boolean)).toHaveLength(local.length - 10)
    } finally {
      await stopGateway()
      await receiver.stop()
    }
  }, 90_000)

  it('no secret of sections 1 and 6-9 appears in any command output, gateway output or the audit log', () => {
    expect(Object.keys(secrets).length).toBeGreaterThanOrEqual(5)
    expectNoSecretIn(
      {
        ...secrets,
        ...guide!.providerKeys,
        GATEHOUSE_MANAGEMENT_KEY: env.GATEHOUSE_MANAGEMENT_KEY,
        GATEHOUSE_ENCRYPTION_KEY: env.GATEHOUSE_ENCRYPTION_KEY,
        GATEHOUSE_AUDIT_KEY: env.GATEHOUSE_AUDIT_KEY,
        GATEHOUSE_KEY_SALT: env.GATEHOUSE_KEY_SALT,
      },
      [
        ...guide!.runs.map((r): [string, string] => [`"${r.command}"`, r.stdout + r.stderr]),
        ...gateways.map((g, i): [string, string] => [`gateway ${i}`, g.output().stdout + g.output().stderr]),
        ['the audit log', readFileSync(join(work, 'logs', 'audit.log'), 'utf8')],
      ],
    )
  })
})

interface IdentityProvider {
  issuer: string
  clientId: string
  clientSecret: string
  /** The tokens it issued, in order, with the algorithm of the key that signed each. */
  issued: { token: string; alg: string }[]
  jwksFetches(): number
  /** Sign with the next key from now on (it was published from the start). */
  rotate(): void
  /** A token that claims the issuer's current key id but is signed with another key. */
  forged(): Promise<string>
  close(): Promise<void>
}

/**
 * An OIDC issuer on a loopback port: a JWKS with the current signing key (RS256) and the next one
 * (ES256) published ahead of use, and a client-credentials token endpoint for one client.
 */
async function startIdentityProvider(): Promise<IdentityProvider> {
  const signers = await Promise.all(
    (['RS256', 'ES256'] as const).map(async (alg, i) => {
      const pair = await generateKeyPair(alg, { extractable: true })
      const kid = `idp-key-${i + 1}`
      const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' }
      return { alg, kid, jwk, privateKey: pair.privateKey }
    }),
  )
  let current = 0
  let fetches = 0
  const clientId = 'svc-reporting'
  const clientSecret = randomBytes(24).toString('base64url')
  const issued: { token: string; alg: string }[] = []
  let issuer = ''
  const sign = (signer: (typeof signers)[number], audience: string): Promise<string> =>
    new SignJWT({})
      .setProtectedHeader({ alg: signer.alg, kid: signer.kid })
      .setIssuer(issuer)
      .setSubject(clientId)
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(signer.privateKey)
  const server = http.createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (d: string) => (body += d))
    req.on('end', () => {
      res.setHeader('content-type', 'application/json')
      if (req.method === 'GET' && req.url === '/.well-known/jwks.json') {
        fetches++
        res.end(JSON.stringify({ keys: signers.map((s) => s.jwk) }))
        return
      }
      const form = new URLSearchParams(body)
      const basic = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`
      if (req.method !== 'POST' || req.url !== '/oauth/token' || req.headers.authorization !== basic || form.get('grant_type') !== 'client_credentials') {
        res.writeHead(401).end('{"error":"invalid_client"}')
        return
      }
      const signer = signers[current]!
      void sign(signer, form.get('audience') ?? '').then((token) => {
        issued.push({ token, alg: signer.alg })
        res.end(JSON.stringify({ access_token: token, token_type: 'Bearer', expires_in: 600 }))
      })
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    issuer,
    clientId,
    clientSecret,
    issued,
    jwksFetches: () => fetches,
    rotate: () => (current = (current + 1) % signers.length),
    forged: async () => {
      const other = await generateKeyPair('ES256')
      return sign({ ...signers[current]!, privateKey: other.privateKey }, 'gatehouse')
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}
