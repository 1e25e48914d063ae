import type { ChildProcess } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import Redis from 'ioredis'
import { sleep, type MockUpstream } from '@gatehouse/testing'
import { ensureBuilt, runCli, startCli, type Started } from './cli-helpers'
import { clusterBase, clusterYaml, redisContents, request, startBalancer, startGateways, startRedis, stopCluster, within, type Reply } from './cluster-helpers'

beforeAll(() => ensureBuilt())

/**
 * Cluster mode's shared policy: three gateway processes on one Redis (their own), each change made
 * through one replica's management API seen by the others within a second.
 */

const chat = { model: 'gpt-4o-mini', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }
const claude = { model: 'claude-sonnet-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }

let dir: string
let upstream: MockUpstream
let redisPort: number
let redis: ChildProcess
const gateways: Started[] = []
let lb: { url: string; close(): Promise<void> }
const prefix = `gh-state-${randomBytes(4).toString('hex')}:`
const managementKey = randomBytes(32).toString('base64url')
const providerKeys = { openai: `sk-proj-${randomBytes(30).toString('base64url')}`, claude: `sk-ant-api03-${randomBytes(40).toString('base64url')}` }
const keysIssued: string[] = []
/** Other secrets the tests handed out (OAuth tokens), for the plaintext scan. */
const otherSecrets: string[] = []

const url = (i: number): string => gateways[i]!.url
const manage = (i: number, method: string, path: string, body?: unknown): Promise<Reply> =>
  request(url(i), method, `/v0/management${path}`, { authorization: `Bearer ${managementKey}` }, body)
const chatOn = (i: number, key: string, agent: http.Agent | false = false): Promise<number> =>
  request(url(i), 'POST', '/v1/chat/completions', { authorization: `Bearer ${key}` }, chat, agent).then((r) => r.status)
const claudeOn = (i: number, key: string): Promise<number> =>
  request(url(i), 'POST', '/v1/messages', { 'x-api-key': key, 'anthropic-version': '2023-06-01' }, claude).then((r) => r.status)
const createKey = async (i: number, name: string): Promise<{ id: string; key: string }> => {
  const r = await manage(i, 'POST', '/keys', { name })
  expect(r.status).toBe(201)
  const { id, key } = JSON.parse(r.body) as { id: string; key: string }
  keysIssued.push(key)
  return { id, key }
}

beforeAll(async () => {
  ;({ dir, upstream, redisPort, redis } = await clusterBase('state'))
  writeFileSync(
    join(dir, 'c.yaml'),
    clusterYaml(
      redisPort,
      prefix,
      `management: { enabled: true, secret_key: "${managementKey}" }
providers:
  openai: { base_url: "${upstream.url}", api_key: "${providerKeys.openai}" }
  claude: { base_url: "${upstream.url}", api_key: "${providerKeys.claude}" }
`,
    ),
  )
  // The salt is made once, before three processes read it.
  expect((await runCli(['keys', 'list', '--config', 'c.yaml'], { cwd: dir })).code).toBe(0)
  await startGateways(3, () => startCli(['--config', 'c.yaml'], { cwd: dir }), gateways)
  // The round-robin balancer in front of them: each new connection goes to the next gateway.
  lb = await startBalancer(() => gateways.map((g) => Number(new URL(g.url).port)))
}, 60_000)

afterAll(() => stopCluster({ lb, gateways, redis, upstream, dir: dir }))

describe('cluster mode: keys created, revoked and rotated on one replica apply on all', () => {
  it('a key created through replica A works on B and C within 1 s', async () => {
    const { key } = await createKey(0, 'made on A')
    for (const i of [1, 2]) {
      const ms = await within(1000, async () => (await chatOn(i, key)) === 200)
      console.log(`cluster state: a key created on A authenticated on replica ${i} after ${ms} ms`)
    }
    expect(await chatOn(0, key)).toBe(200)
    // And through the balancer, every connection on the next replica.
    const viaLb = await Promise.all(Array.from({ length: 6 }, () => request(lb.url, 'POST', '/v1/chat/completions', { authorization: `Bearer ${key}` }, chat)))
    expect(viaLb.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200])
  })

  it('a key revoked through B is refused by A and C within 1 s, kept-alive connections included', async () => {
    const { id, key } = await createKey(1, 'revoked on B')
    const agents = [0, 2].map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }))
    try {
      // A kept-alive connection to A and to C, authenticated before the revocation.
      await within(1000, async () => (await chatOn(0, key, agents[0])) === 200 && (await chatOn(2, key, agents[1])) === 200)
      const revoked = await manage(1, 'DELETE', `/keys/${id}`)
      expect(revoked.status).toBe(200)
      expect(await chatOn(1, key)).toBe(401)
      const ms = await within(1000, async () => (await chatOn(0, key, agents[0])) === 401 && (await chatOn(2, key, agents[1])) === 401)
      console.log(`cluster state: a key revoked on B was refused on A and C after ${ms} ms`)
    } finally {
      for (const a of agents) a.destroy()
    }
    // Listed as revoked on every replica.
    for (const i of [0, 1, 2]) {
      const listed = (JSON.parse((await manage(i, 'GET', '/keys')).body) as { keys: Array<{ id: string; revoked_at?: string }> }).keys
      expect(listed.find((k) => k.id === id)?.revoked_at).toEqual(expect.any(String))
    }
  })

  it('a key rotated through A: its successor works on B and C within 1 s, the old one until the grace ends; refusals say why', async () => {
    const { id, key } = await createKey(0, 'rotated on A')
    const rotated = await manage(0, 'POST', `/keys/${id}/rotate`, { grace: '2s' })
    expect(rotated.status).toBe(201)
    const body = JSON.parse(rotated.body) as { id: string; key: string; previous: { id: string; valid_until: string } }
    keysIssued.push(body.key)
    expect(body.previous.id).toBe(id)
    await within(1000, async () => (await chatOn(1, body.key)) === 200 && (await chatOn(2, body.key)) === 200)
    expect(await chatOn(2, key)).toBe(200)
    expect((await manage(1, 'POST', `/keys/${id}/rotate`, {})).status).toBe(409)
    expect((await manage(1, 'POST', '/keys/key_00000000/rotate', {})).status).toBe(404)
    expect((await manage(1, 'POST', `/keys/${body.id}/rotate`, { grace: 'soon' })).status).toBe(400)
    await sleep(Math.max(0, Date.parse(body.previous.valid_until) - Date.now() + 200))
    for (const i of [0, 1, 2]) {
      expect(await chatOn(i, key)).toBe(401)
      expect(await chatOn(i, body.key)).toBe(200)
    }
  })
})

describe('cluster mode: stored responses stay their maker\u2019s on every replica', () => {
  it('a response made through A is continued by its key through B and C, and refused to another key (never forwarded)', async () => {
    const maker = await createKey(0, 'maker')
    const stranger = await createKey(0, 'stranger')
    await within(1000, async () => (await chatOn(2, stranger.key)) === 200)
    const responses = (i: number, key: string, body: object): Promise<Reply> =>
      request(url(i), 'POST', '/v1/responses', { authorization: `Bearer ${key}` }, { model: 'gpt-4o-mini', input: 'hi', ...body })
    const made = await responses(0, maker.key, {})
    expect(made.status).toBe(200)
    const id = (JSON.parse(made.body) as { id: string }).id
    for (const i of [1, 2]) {
      const ms = await within(1000, async () => (await responses(i, maker.key, { previous_response_id: id })).status === 200)
      console.log(`cluster state: a response made on A was continued on replica ${i} after ${ms} ms`)
      upstream.reset()
      const refused = await responses(i, stranger.key, { previous_response_id: id })
      expect(refused.status).toBe(404)
      expect(upstream.requests).toHaveLength(0)
    }
  })
})

describe('cluster mode: maintenance, the kill switch and doctor', () => {
  it('maintenance and the kill switch set through C apply to all three', async () => {
    const { key } = await createKey(2, 'maintenance')
    await within(1000, async () => (await chatOn(0, key)) === 200 && (await chatOn(1, key)) === 200)
    expect((await manage(2, 'PUT', '/maintenance', { enabled: true, message: 'cluster maintenance' })).status).toBe(200)
    await within(1000, async () => {
      const replies = await Promise.all([0, 1, 2].map((i) => request(url(i), 'POST', '/v1/chat/completions', { authorization: `Bearer ${key}` }, chat)))
      return replies.every((r) => r.status === 503 && r.body.includes('cluster maintenance'))
    })
    expect((await manage(0, 'PUT', '/maintenance', { enabled: false })).status).toBe(200)
    await within(1000, async () => (await Promise.all([0, 1, 2].map((i) => chatOn(i, key)))).every((s) => s === 200))

    expect((await manage(2, 'PUT', '/providers/openai', { enabled: false, message: 'openai is off' })).status).toBe(200)
    await within(1000, async () => (await Promise.all([0, 1, 2].map((i) => chatOn(i, key)))).every((s) => s === 503))
    // The other provider is untouched.
    for (const i of [0, 1, 2]) expect(await claudeOn(i, key)).toBe(200)
    expect((await manage(1, 'PUT', '/providers/openai', { enabled: true })).status).toBe(200)
    await within(1000, async () => (await Promise.all([0, 1, 2].map((i) => chatOn(i, key)))).every((s) => s === 200))
  })

  it('gatehouse doctor says which replica holds which version of the shared state', async () => {
    type Versions = { keys_version: number; runtime_version: number; credentials_version: number }
    type Doctor = { cluster: { shared: Versions; replicas: Array<Versions & { pid: number; state: string }> } }
    let report: Doctor | undefined
    await within(8000, async () => {
      const run = await runCli(['doctor', '--json', '--config', 'c.yaml'], { cwd: dir })
      report = JSON.parse(run.stdout) as Doctor
      return report.cluster.replicas.length === 3 && report.cluster.replicas.every((r) => r.state === 'in step')
    })
    const { shared, replicas } = report!.cluster
    expect(shared.keys_version).toBeGreaterThan(0)
    expect(replicas.map((r) => r.pid).sort()).toEqual(gateways.map((g) => g.child.pid).sort())
    for (const r of replicas) expect([r.keys_version, r.runtime_version, r.credentials_version]).toEqual([shared.keys_version, shared.runtime_version, shared.credentials_version])
    const text = await runCli(['doctor', '--config', 'c.yaml'], { cwd: dir })
    expect(text.stdout).toMatch(/cluster: keys version \d+, runtime version \d+, credentials version \d+, 3 replicas reporting/)
  }, 30_000)
})

describe('cluster mode: OAuth refresh once for all replicas, and nothing in plaintext', () => {
  it('refreshes an expired OAuth token once for 20 requests spread over the three replicas, and every replica then sends the new token', async () => {
    const issued: string[] = []
    const tokenEndpoint = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        setTimeout(() => {
          const access = `sk-ant-oat01-${randomBytes(30).toString('base64url')}`
          issued.push(access)
          res.setHeader('content-type', 'application/json')
          res.end(JSON.stringify({ access_token: access, refresh_token: `sk-ant-ort01-${randomBytes(30).toString('base64url')}`, expires_in: 3600 }))
        }, 300)
      })
    })
    await new Promise<void>((r) => tokenEndpoint.listen(0, '127.0.0.1', r))
    try {
      const tokenUrl = `http://127.0.0.1:${(tokenEndpoint.address() as AddressInfo).port}/token`
      const expired = `sk-ant-oat01-${randomBytes(30).toString('base64url')}`
      otherSecrets.push(expired)
      const added = await manage(0, 'POST', '/auths', { provider: 'claude', type: 'oauth', oauth: { access_token: expired, refresh_token: `sk-ant-ort01-${randomBytes(30).toString('base64url')}`, expires_at: Date.now() - 1000, token_url: tokenUrl } })
      expect(added.status).toBe(201)
      // The credential record is shared through Redis: each replica serves it.
      await within(5000, async () => {
        const lists = await Promise.all([0, 1, 2].map((i) => manage(i, 'GET', '/auths')))
        return lists.every((l) => l.body.includes('"type":"oauth"'))
      })
      const { key } = await createKey(0, 'oauth')
      await within(1000, async () => (await Promise.all([0, 1, 2].map((i) => claudeOn(i, key)))).every((s) => s === 200))
      upstream.reset()
      const statuses = await Promise.all(Array.from({ length: 20 }, (_, i) => claudeOn(i % 3, key)))
      expect(statuses.every((s) => s === 200)).toBe(true)
      // Each replica took the token once it was refreshed (in the background, its static key serving meanwhile).
      await within(5000, async () => {
        const sent = new Set(upstream.requests.map((r) => String(r.headers.authorization ?? '')))
        if (issued.length === 0 || !sent.has(`Bearer ${issued[0]}`)) {
          await Promise.all([0, 1, 2].map((i) => claudeOn(i, key)))
          return false
        }
        return true
      })
      await sleep(500)
      expect(issued).toHaveLength(1)
      for (const i of [0, 1, 2]) {
        upstream.reset()
        for (let n = 0; n < 4; n++) expect(await claudeOn(i, key)).toBe(200)
        expect(upstream.requests.map((r) => r.headers.authorization)).toContain(`Bearer ${issued[0]}`)
      }
      otherSecrets.push(...issued)
    } finally {
      await new Promise((r) => tokenEndpoint.close(r))
    }
  })

  it('keeps no key, token or credential in plaintext in Redis', async () => {
    const { keys, text } = await redisContents(redisPort)
    expect(keys.some((k) => k.startsWith(`${prefix}client-keys`))).toBe(true)
    expect(keys).toContain(`${prefix}vault:records`)
    expect(keysIssued.length).toBeGreaterThanOrEqual(3)
    expect(otherSecrets.length).toBeGreaterThanOrEqual(2)
    for (const secret of [...keysIssued, ...otherSecrets, providerKeys.openai, providerKeys.claude, managementKey]) expect(text).not.toContain(secret)
  })
})

describe('cluster mode: Redis down and back, and moving a file-mode install in', () => {
  it('with Redis down: keys authenticate from the last copy, changes are refused with 503; a restarted Redis heals without a gateway restart', async () => {
    const { key } = await createKey(0, 'through the outage')
    await within(1000, async () => (await Promise.all([0, 1, 2].map((i) => chatOn(i, key)))).every((s) => s === 200))
    redis.kill('SIGKILL')
    await new Promise((r) => redis.once('exit', r))
    for (const i of [0, 1, 2]) expect(await chatOn(i, key)).toBe(200)
    const doctor = await runCli(['doctor', '--config', 'c.yaml'], { cwd: dir })
    expect(doctor.code).toBe(1)
    expect(doctor.stdout).toMatch(/HIGH\s+The cluster's Redis \(store.url\) cannot be read/)
    const refused = await manage(1, 'PUT', '/maintenance', { enabled: true })
    expect(refused.status).toBe(503)
    expect(refused.body).toMatch(/unreachable; nothing was changed/)
    expect((await manage(2, 'POST', '/keys', { name: 'during the outage' })).status).toBe(503)
    // Nothing applied to one replica: none is in maintenance.
    for (const i of [0, 1, 2]) expect(await chatOn(i, key)).toBe(200)

    // Redis back, empty (no persistence): the replicas put their copy back.
    redis = await startRedis(redisPort)
    const ms = await within(10_000, async () => (await manage(0, 'PUT', '/maintenance', { enabled: false })).status === 200)
    console.log(`cluster state: management changes accepted again ${ms} ms after Redis restarted`)
    const client = new Redis({ port: redisPort, host: '127.0.0.1' })
    try {
      await within(5000, async () => Object.keys(await client.hgetall(`${prefix}client-keys`)).length >= keysIssued.length)
    } finally {
      client.disconnect()
    }
    for (const i of [0, 1, 2]) expect(await chatOn(i, key)).toBe(200)
    const after = await createKey(1, 'after the outage')
    await within(1000, async () => (await chatOn(2, after.key)) === 200)
    for (const g of gateways) expect(g.child.exitCode).toBeNull()
  }, 60_000)

  it('moves a file-mode install into cluster mode without re-issuing keys (keys migrate --to redis)', async () => {
    const single = mkdtempSync(join(tmpdir(), 'gh-migrate-'))
    const clusterPrefix = `gh-migrate-${randomBytes(4).toString('hex')}:`
    try {
      writeFileSync(join(single, 'file.yaml'), `providers:\n  openai: { base_url: "${upstream.url}", api_key: "${providerKeys.openai}" }\n`)
      const made = await runCli(['keys', 'create', '--name', 'from the file', '--config', 'file.yaml'], { cwd: single })
      expect(made.code).toBe(0)
      const key = made.stdout.trim()
      writeFileSync(join(single, 'cluster.yaml'), `store: { type: redis, url: "redis://127.0.0.1:${redisPort}", key_prefix: "${clusterPrefix}" }\nproviders:\n  openai: { base_url: "${upstream.url}", api_key: "${providerKeys.openai}" }\n`)
      const moved = await runCli(['keys', 'migrate', '--to', 'redis', '--config', 'cluster.yaml'], { cwd: single })
      expect(moved.stdout).toMatch(/migrated 1 key to Redis/)
      expect(moved.code).toBe(0)
      // Twice is harmless.
      expect((await runCli(['keys', 'migrate', '--to', 'redis', '--config', 'cluster.yaml'], { cwd: single })).stdout).toMatch(/migrated 0 keys to Redis \(1 already there\)/)
      const listed = await runCli(['keys', 'list', '--json', '--config', 'cluster.yaml'], { cwd: single })
      expect((JSON.parse(listed.stdout) as Array<{ name: string }>).map((k) => k.name)).toEqual(['from the file'])
      // The same key authenticates on a gateway of the cluster.
      writeFileSync(join(single, 'cluster.yaml'), `server: { port: 0 }\nmetrics: { enabled: false }\nstore: { type: redis, url: "redis://127.0.0.1:${redisPort}", key_prefix: "${clusterPrefix}" }\nproviders:\n  openai: { base_url: "${upstream.url}", api_key: "${providerKeys.openai}" }\n`)
      const gw = await startCli(['--config', 'cluster.yaml'], { cwd: single })
      try {
        expect((await request(gw.url, 'POST', '/v1/chat/completions', { authorization: `Bearer ${key}` }, chat)).status).toBe(200)
      } finally {
        gw.child.kill('SIGTERM')
        await gw.exited
      }
      // Without a Redis in the config, migrate says what it needs.
      const refused = await runCli(['keys', 'migrate', '--to', 'redis', '--config', 'file.yaml'], { cwd: single })
      expect(refused.code).toBe(2)
      expect(refused.stderr).toMatch(/needs store.type redis/)
    } finally {
      rmSync(single, { recursive: true, force: true })
    }
  }, 60_000)
})
