import type { ChildProcess } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import Redis from 'ioredis'
import type { MockUpstream } from '@gatehouse/testing'
import { createCredentialVault } from '@gatehouse/credential-vault'
import { ensureBuilt, runCli, startCli, type Started } from './cli-helpers'
import { clusterBase, clusterYaml, redisContents, request, startBalancer, startGateways, startRedis, stopCluster, within, type Reply } from './cluster-helpers'

beforeAll(() => ensureBuilt())

/**
 * Cluster mode's credential vault: three gateway processes that share NO auth directory (each its
 * own, the same encryption key and salt) on one Redis of their own, behind a round-robin balancer.
 * The credential records live in Redis, encrypted; a change through one replica applies on all.
 */

const claude = { model: 'claude-sonnet-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }
const LEASE_MS = 2000
/** What a provider without any credential answers (the gateway's "no credential configured" refusal). */
const NONE = 403

let base: string
let upstream: MockUpstream
let redisPort: number
let redis: ChildProcess
const gateways: Started[] = []
let lb: { url: string; close(): Promise<void> }
let clientKey: string
/** The OAuth credentials the tests added (their shared tokens are in Redis, encrypted). */
const oauthIds: string[] = []
const prefix = `gh-vault-${randomBytes(4).toString('hex')}:`
const managementKey = randomBytes(32).toString('base64url')
const env = { GATEHOUSE_ENCRYPTION_KEY: randomBytes(32).toString('base64'), GATEHOUSE_KEY_SALT: randomBytes(32).toString('hex') }
/** Every secret handed out or issued, for the plaintext scan of Redis. */
const secrets: string[] = [managementKey, env.GATEHOUSE_ENCRYPTION_KEY, env.GATEHOUSE_KEY_SALT]
const apiKey = (): string => `sk-ant-api03-${randomBytes(40).toString('base64url')}`
const oauthToken = (kind: 'oat' | 'ort'): string => `sk-ant-${kind}01-${randomBytes(30).toString('base64url')}`

const vaultYaml = (keyPrefix: string, extra = ''): string =>
  clusterYaml(
    redisPort,
    keyPrefix,
    `auth: { oauth: { refresh_lease: ${LEASE_MS}ms } }
providers:
  claude: { base_url: "${upstream.url}" }
${extra}`,
  )

/** A gateway in a directory of its own (its own auth dir). */
async function replica(keyPrefix = prefix): Promise<Started> {
  const dir = mkdtempSync(join(base, 'replica-'))
  writeFileSync(join(dir, 'c.yaml'), vaultYaml(keyPrefix, `management: { enabled: true, secret_key: "${managementKey}" }\n`))
  return startCli(['--config', 'c.yaml'], { cwd: dir, env })
}

const manage = (g: Started, method: string, path: string, body?: unknown): Promise<Reply> =>
  request(g.url, method, `/v0/management${path}`, { authorization: `Bearer ${managementKey}` }, body)
const claudeOn = (url: string): Promise<Reply> => request(url, 'POST', '/v1/messages', { 'x-api-key': clientKey, 'anthropic-version': '2023-06-01' }, claude)
const statusOn = async (g: Started): Promise<number> => (await claudeOn(g.url)).status
const addCredential = async (g: Started, body: unknown): Promise<string> => {
  const r = await manage(g, 'POST', '/auths', body)
  expect(r.status).toBe(201)
  return (JSON.parse(r.body) as { id: string }).id
}

/** A token endpoint of the test's own: counts the refreshes; `hang` holds the answer to the next one. */
async function tokenEndpoint(): Promise<{ url: string; calls: number; issued: string[]; hang: boolean; close(): Promise<void> }> {
  const ep = { url: '', calls: 0, issued: [] as string[], hang: false, close: (): Promise<void> => Promise.resolve() }
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      ep.calls++
      if (ep.hang) {
        ep.hang = false
        return
      }
      setTimeout(() => {
        const access = oauthToken('oat')
        const refresh = oauthToken('ort')
        ep.issued.push(access)
        secrets.push(access, refresh)
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ access_token: access, refresh_token: refresh, expires_in: 3600 }))
      }, 300)
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  ep.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`
  ep.close = () => {
    server.closeAllConnections()
    return new Promise<void>((r) => server.close(() => r()))
  }
  return ep
}

const expiredOAuth = (tokenUrl: string): unknown => {
  const access = oauthToken('oat')
  const refresh = oauthToken('ort')
  secrets.push(access, refresh)
  return { provider: 'claude', type: 'oauth', oauth: { access_token: access, refresh_token: refresh, expires_at: Date.now() - 1000, token_url: tokenUrl } }
}

beforeAll(async () => {
  ;({ dir: base, upstream, redisPort, redis } = await clusterBase('cluster-vault'))
  await startGateways(3, () => replica(), gateways)
  lb = await startBalancer(() => gateways.map((g) => Number(new URL(g.url).port)))
  const made = await manage(gateways[0]!, 'POST', '/keys', { name: 'vault tests' })
  expect(made.status).toBe(201)
  clientKey = (JSON.parse(made.body) as { key: string }).key
  secrets.push(clientKey)
  expect(await Promise.all(gateways.map(statusOn))).toEqual([NONE, NONE, NONE])
}, 60_000)

afterAll(() => stopCluster({ lb, gateways, redis, upstream, dir: base }))

describe('cluster mode: the vault\u2019s credentials in Redis, no shared auth directory', () => {
  it('a credential added through A serves on B and C within 1 s; removed through B, it stops on A and C within 1 s', async () => {
    const [a, b, c] = gateways as [Started, Started, Started]
    const token = apiKey()
    secrets.push(token)
    const id = await addCredential(a, { provider: 'claude', type: 'api_key', token })
    expect(await statusOn(a)).toBe(200)
    for (const g of [b, c]) {
      const ms = await within(1000, async () => (await statusOn(g)) === 200)
      console.log(`cluster vault: a credential added on A served on ${g.url} after ${ms} ms`)
    }
    expect(upstream.requests.at(-1)?.headers['x-api-key']).toBe(token)
    // Listed (masked) on every replica, without a file.
    for (const g of gateways) {
      const listed = (await manage(g, 'GET', '/auths')).body
      expect(listed).toContain(id)
      expect(listed).not.toContain(token)
    }
    // gatehouse doctor: every replica holds the shared records' version (heartbeats every 2 s).
    const probe = mkdtempSync(join(base, 'doctor-'))
    writeFileSync(join(probe, 'c.yaml'), vaultYaml(prefix, ''))
    type Versions = { credentials_version: number }
    await within(8000, async () => {
      const { cluster } = JSON.parse((await runCli(['doctor', '--json', '--config', 'c.yaml'], { cwd: probe, env })).stdout) as { cluster: { shared: Versions; replicas: Versions[] } }
      return cluster.shared.credentials_version > 0 && cluster.replicas.length >= 3 && cluster.replicas.every((r) => r.credentials_version === cluster.shared.credentials_version)
    })

    expect((await manage(b, 'DELETE', `/auths/claude/${id}`)).status).toBe(200)
    expect(await statusOn(b)).toBe(NONE)
    const ms = await within(1000, async () => (await statusOn(a)) === NONE && (await statusOn(c)) === NONE)
    console.log(`cluster vault: a credential removed on B stopped on A and C after ${ms} ms`)
  })

  it('refreshes an expired OAuth token once for 20 concurrent requests across the three, and each replica then sends the new token', async () => {
    const ep = await tokenEndpoint()
    try {
      oauthIds.push(await addCredential(gateways[0]!, expiredOAuth(ep.url)))
      await within(1000, async () => (await Promise.all(gateways.map((g) => manage(g, 'GET', '/auths')))).every((l) => l.body.includes('"type":"oauth"')))
      const replies = await Promise.all(Array.from({ length: 20 }, () => claudeOn(lb.url)))
      expect(replies.map((r) => r.status)).toEqual(Array.from({ length: 20 }, () => 200))
      expect(ep.calls).toBe(1)
      for (const g of gateways) {
        upstream.reset()
        expect(await statusOn(g)).toBe(200)
        expect(upstream.requests.map((r) => r.headers.authorization)).toEqual([`Bearer ${ep.issued[0]}`])
      }
      expect(ep.calls).toBe(1)
    } finally {
      await ep.close()
    }
  })

  it('a replica killed with SIGKILL while it holds the refresh lock blocks the next refresh no longer than the lease', async () => {
    const ep = await tokenEndpoint()
    const doomed = await replica()
    try {
      expect((await manage(gateways[0]!, 'DELETE', '/auths/claude')).status).toBe(200)
      const id = await addCredential(gateways[0]!, expiredOAuth(ep.url))
      await within(1000, async () => (await manage(doomed, 'GET', '/auths')).body.includes(id))
      ep.hang = true
      void claudeOn(doomed.url).catch(() => undefined)
      await within(5000, async () => ep.calls === 1)
      const client = new Redis({ port: redisPort, host: '127.0.0.1' })
      try {
        expect(await client.exists(`${prefix}vault:oauth:${id}:lock`)).toBe(1)
      } finally {
        client.disconnect()
      }
      doomed.child.kill('SIGKILL')
      const killedAt = Date.now()
      const reply = await claudeOn(gateways[1]!.url)
      const waited = Date.now() - killedAt
      console.log(`cluster vault: the next refresh completed ${waited} ms after the lock holder was killed (lease ${LEASE_MS} ms)`)
      expect(reply.status).toBe(200)
      expect(waited).toBeLessThan(LEASE_MS + 1500)
      expect(ep.calls).toBe(2)
      expect(upstream.requests.at(-1)?.headers.authorization).toBe(`Bearer ${ep.issued[0]}`)
    } finally {
      doomed.child.kill('SIGKILL')
      await doomed.exited
      await ep.close()
    }
  }, 30_000)

  it('keeps no credential, token or key in plaintext in any Redis value', async () => {
    const { keys, text } = await redisContents(redisPort)
    expect(keys).toContain(`${prefix}vault:records`)
    expect(keys).toContain(`${prefix}vault:oauth:${oauthIds[0]}`)
    expect(secrets.length).toBeGreaterThanOrEqual(10)
    for (const secret of secrets) expect(text).not.toContain(secret)
  })

  it('with Redis down the replicas serve from their last copy and refuse credential changes with 503', async () => {
    await within(1000, async () => (await Promise.all(gateways.map(statusOn))).every((s) => s === 200))
    redis.kill('SIGKILL')
    await new Promise((r) => redis.once('exit', r))
    for (const g of gateways) expect(await statusOn(g)).toBe(200)
    const refused = await manage(gateways[2]!, 'POST', '/auths', { provider: 'claude', type: 'api_key', token: apiKey() })
    expect(refused.status).toBe(503)
    expect((await manage(gateways[1]!, 'DELETE', '/auths/claude')).status).toBe(503)
    for (const g of gateways) expect(await statusOn(g)).toBe(200)
    // Back, empty: the replicas put their copy back, and changes are accepted again.
    redis = await startRedis(redisPort)
    await within(10_000, async () => (await manage(gateways[0]!, 'PUT', '/maintenance', { enabled: false })).status === 200)
    const client = new Redis({ port: redisPort, host: '127.0.0.1' })
    try {
      await within(5000, async () => (await client.hlen(`${prefix}vault:records`)) === 1)
    } finally {
      client.disconnect()
    }
    for (const g of gateways) expect(await statusOn(g)).toBe(200)
  }, 60_000)
})

/** A gateway started from `config` in `cwd` sends `token` upstream for a client key made there. */
async function servesToken(cwd: string, config: string, runEnv: Record<string, string>, token: string): Promise<void> {
  const made = await runCli(['keys', 'create', '--name', 'replica', '--config', config], { cwd, env: runEnv })
  expect(made.code).toBe(0)
  const key = made.stdout.trim()
  secrets.push(key)
  const gw = await startCli(['--config', config], { cwd, env: runEnv })
  try {
    upstream.reset()
    const reply = await request(gw.url, 'POST', '/v1/messages', { 'x-api-key': key, 'anthropic-version': '2023-06-01' }, claude)
    expect(reply.status).toBe(200)
    expect(upstream.requests.map((r) => r.headers['x-api-key'])).toEqual([token])
  } finally {
    gw.child.kill('SIGTERM')
    await gw.exited
  }
}

describe('gatehouse vault migrate --to redis', () => {
  it('moves a file-mode install\u2019s credentials into Redis (dry run first, idempotent, no secret printed); a replica with an empty auth dir serves them', async () => {
    const single = mkdtempSync(join(base, 'single-'))
    const movedPrefix = `gh-vault-moved-${randomBytes(4).toString('hex')}:`
    const token = apiKey()
    secrets.push(token)
    const files = createCredentialVault({ dir: join(single, 'auths'), encryption: { key: env.GATEHOUSE_ENCRYPTION_KEY }, watch: false, rescanInterval: 0 })
    const { id } = await files.add({ provider: 'claude', type: 'api_key', token })
    await files.shutdown()
    writeFileSync(join(single, 'c.yaml'), vaultYaml(movedPrefix))
    const cli = (args: string[]) => runCli(['vault', 'migrate', '--to', 'redis', ...args, '--config', 'c.yaml'], { cwd: single, env })
    const client = new Redis({ port: redisPort, host: '127.0.0.1' })
    try {
      const dry = await cli(['--dry-run'])
      expect(dry.stdout).toContain(`would move ${id} (claude, api_key)`)
      expect(dry.code).toBe(0)
      expect(await client.exists(`${movedPrefix}vault:records`)).toBe(0)
      const moved = await cli([])
      expect(moved.stdout).toMatch(/^1 moved to Redis, 0 already there, 0 conflicting, 0 failed/m)
      expect(moved.code).toBe(0)
      const again = await cli([])
      expect(again.stdout).toContain(`already in Redis: ${id}`)
      expect(again.code).toBe(0)
      for (const run of [dry, moved, again]) expect(run.stdout + run.stderr).not.toContain(token)
    } finally {
      client.disconnect()
    }
    // A replica of that cluster in an empty directory: the credential serves from Redis.
    const empty = mkdtempSync(join(base, 'empty-'))
    mkdirSync(join(empty, 'auths'), { mode: 0o700 })
    writeFileSync(join(empty, 'c.yaml'), vaultYaml(movedPrefix))
    await servesToken(empty, 'c.yaml', env, token)
    // Without a Redis in the config, it says what it needs.
    writeFileSync(join(single, 'file.yaml'), 'metrics: { enabled: false }\n')
    const refused = await runCli(['vault', 'migrate', '--to', 'redis', '--config', 'file.yaml'], { cwd: single, env })
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(/needs store.type redis/)
  }, 60_000)
})

describe('gatehouse vault rotate-key in cluster mode', () => {
  it('re-seals the records in Redis under the new key, printing no secret; a replica holding the new key alone serves them', async () => {
    const dir = mkdtempSync(join(base, 'rotate-'))
    const rotPrefix = `gh-vault-rot-${randomBytes(4).toString('hex')}:`
    const token = apiKey()
    const keys = { OLD_KEY: env.GATEHOUSE_ENCRYPTION_KEY, NEW_KEY: randomBytes(32).toString('base64') }
    secrets.push(token, keys.NEW_KEY)
    const client = new Redis({ port: redisPort, host: '127.0.0.1' })
    const recordKid = async (id: string): Promise<string> => (JSON.parse((await client.hget(`${rotPrefix}vault:records`, id))!) as { kid: string }).kid
    try {
      // A credential of the cluster, in Redis under the old key.
      const seed = createCredentialVault({ dir: join(dir, 'seed'), encryption: { key: keys.OLD_KEY }, watch: false, rescanInterval: 0, cluster: { client, prefix: rotPrefix, records: true } })
      await seed.start()
      const { id } = await seed.add({ provider: 'claude', type: 'api_key', token })
      await seed.shutdown()
      const oldKid = await recordKid(id)
      const yaml = (encryption: string): string => clusterYaml(redisPort, rotPrefix, `auth: { encryption: ${encryption} }\nproviders:\n  claude: { base_url: "${upstream.url}" }\n`)
      writeFileSync(join(dir, 'rotate.yaml'), yaml('{ key: "${NEW_KEY}", previous_keys: ["${OLD_KEY}"] }'))
      const rotated = await runCli(['vault', 'rotate-key', '--config', 'rotate.yaml'], { cwd: dir, env: { ...env, ...keys } })
      expect(rotated.stdout).toContain('Redis: 1 records re-encrypted under the current key, 0 already current; shared OAuth tokens: 0 re-encrypted, 0 already current; 0 failed')
      expect(rotated.code).toBe(0)
      expect(await recordKid(id)).not.toBe(oldKid)
      const again = await runCli(['vault', 'rotate-key', '--config', 'rotate.yaml'], { cwd: dir, env: { ...env, ...keys } })
      expect(again.stdout).toContain('Redis: 0 records re-encrypted under the current key, 1 already current')
      for (const run of [rotated, again]) expect(run.stdout + run.stderr).not.toMatch(new RegExp([token, keys.OLD_KEY, keys.NEW_KEY].map((x) => x.replace(/[+/]/g, '\\$&')).join('|')))
      // The old key dropped: a replica with the new key alone serves the credential.
      writeFileSync(join(dir, 'new.yaml'), yaml('{ key: "${NEW_KEY}" }'))
      await servesToken(dir, 'new.yaml', { ...env, ...keys }, token)
    } finally {
      client.disconnect()
    }
  }, 60_000)
})
