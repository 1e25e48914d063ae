import type { ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import Redis from 'ioredis'
import { httpRequest, sleep, waitFor, type MockUpstream } from '@gatehouse/testing'
import { ensureBuilt, runCli, startCli, type Started } from './cli-helpers'
import { clusterBase, clusterYaml, startBalancer, startGateways, startRedis, stopCluster } from './cluster-helpers'

beforeAll(() => ensureBuilt())

/**
 * One request on a connection of its own (so the balancer sends it to the next gateway), bounded
 * longer than httpRequest's default: the held answers take 6 s, more on a loaded machine.
 */
async function call(url: string, key: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<number> {
  const reply = await httpRequest(url, { path, headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers }, body: JSON.stringify(body), timeoutMs: 60_000 })
  return reply.status
}

const chat = { model: 'gpt-4o-mini', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }

describe('cluster mode: three gateway processes on one Redis behind a round-robin balancer', () => {
  let dir: string
  let upstream: MockUpstream
  let redisPort: number
  let redis: ChildProcess
  const gateways: Started[] = []
  let lb: { url: string; close(): Promise<void> }
  const prefix = `gh-cluster-${randomBytes(4).toString('hex')}:`

  const key = async (...flags: string[]): Promise<string> => (await runCli(['keys', 'create', '--name', `k${randomBytes(3).toString('hex')}`, ...flags, '--config', 'c.yaml'], { cwd: dir })).stdout.trim()

  beforeAll(async () => {
    ;({ dir, upstream, redisPort, redis } = await clusterBase('cluster'))
    writeFileSync(
      join(dir, 'c.yaml'),
      clusterYaml(
        redisPort,
        prefix,
        `providers:
  openai: { base_url: "${upstream.url}", api_key: "sk-proj-${randomBytes(30).toString('base64url')}" }
  claude: { base_url: "${upstream.url}", api_key: "sk-ant-api03-${randomBytes(40).toString('base64url')}", quota: { limit: 20000, reset: monthly } }
`,
      ),
    )
    await key() // the auth dir and its salt exist before three processes read them
    await startGateways(3, () => startCli(['--config', 'c.yaml'], { cwd: dir }), gateways)
    lb = await startBalancer(() => gateways.map((g) => Number(new URL(g.url).port)))
  }, 60_000)

  afterAll(() => stopCluster({ lb, gateways, redis, upstream, dir }))

  it('admits exactly 100 of a concurrent burst of 300 against a per-key concurrency of 100, and about 100 against 100 requests per minute', async () => {
    const held = await key('--concurrency', '100')
    // Held long enough that all 300 are in flight at once even on a loaded machine (1.5 s let the
    // first ones finish before the last arrived there, and admitted 210).
    upstream.behave({ delayMs: 6000 })
    const statuses = await Promise.all(Array.from({ length: 300 }, () => call(lb.url, held, '/v1/chat/completions', chat)))
    upstream.behave({})
    expect(statuses.filter((s) => s === 200)).toHaveLength(100)
    expect(statuses.filter((s) => s === 429)).toHaveLength(200)

    const rpm = await key('--rpm', '100')
    const started = Date.now()
    const burst = await Promise.all(Array.from({ length: 300 }, () => call(lb.url, rpm, '/v1/chat/completions', chat)))
    const seconds = (Date.now() - started) / 1000
    const admitted = burst.filter((s) => s === 200).length
    // The bucket refills at 100 a minute while the burst runs: at most that many more.
    console.log(`cluster: 300 concurrent requests against --rpm 100 admitted ${admitted} in ${seconds.toFixed(2)} s`)
    expect(admitted).toBeGreaterThanOrEqual(100)
    expect(admitted).toBeLessThanOrEqual(100 + Math.ceil((seconds * 100) / 60))
    expect(burst.filter((s) => s !== 200 && s !== 429)).toEqual([])
  }, 60_000)

  it('overspends a shared monthly quota by at most one reservation under 50 concurrent streams', async () => {
    const k = await key()
    // Each stream reserves its prompt estimate + 400, and the provider uses all of it.
    const body = { model: 'claude-sonnet-4-5', max_tokens: 400, stream: true, messages: [{ role: 'user', content: 'hi' }] }
    const reservation = Math.ceil(Buffer.byteLength(JSON.stringify(body)) / 4) + 400
    upstream.behave({ chunks: 5, chunkIntervalMs: 20, usage: { input: reservation - 400, output: 400 } })
    const statuses = await Promise.all(Array.from({ length: 50 }, () => call(lb.url, k, '/v1/messages', body, { 'anthropic-version': '2023-06-01' })))
    upstream.behave({})
    const admitted = statuses.filter((s) => s === 200).length
    expect(admitted).toBeGreaterThan(0)
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([])
    await sleep(300)
    const client = new Redis({ port: redisPort, host: '127.0.0.1' })
    try {
      const keys = await client.keys(`${prefix}rl:q:quota:provider-quota:claude`)
      const used = Number(await client.hget(keys[0]!, 'u'))
      console.log(`cluster: 50 streams at a 20000-token quota: ${admitted} admitted, ${used} used (reservation ${reservation})`)
      // Reservations are atomic across the three processes: exactly as many as fit were admitted.
      expect(admitted).toBe(Math.floor(20_000 / reservation))
      expect(used).toBe(admitted * reservation)
      expect(used).toBeLessThanOrEqual(20_000 + reservation)
    } finally {
      client.disconnect()
    }
  }, 60_000)

  it('applies store.on_error local within 1 s of Redis dying (limit ÷ replicas), and shares limits again once it is back, without a restart', async () => {
    const k = await key('--rpm', '6')
    redis.kill('SIGKILL')
    await new Promise((r) => redis.once('exit', r))
    const died = Date.now()
    const first = await call(lb.url, k, '/v1/chat/completions', chat)
    expect(first).toBe(200)
    expect(Date.now() - died).toBeLessThan(1000)
    // Each gateway now allows 6 / 3 = 2 of its own: 6 in all, one of them spent above.
    const local: number[] = []
    for (let i = 0; i < 12; i++) local.push(await call(lb.url, k, '/v1/chat/completions', chat))
    expect(local.filter((s) => s === 200)).toHaveLength(5)
    redis = await startRedis(redisPort)
    // Back on the shared bucket (Redis came back empty: a fresh key gets its whole 3 across the cluster, not 1 per gateway).
    const k2 = await key('--rpm', '3')
    let shared: number[] = []
    const sixShared = async (): Promise<boolean> => {
      const statuses: number[] = []
      for (let i = 0; i < 6; i++) statuses.push(await call(lb.url, k2, '/v1/chat/completions', chat))
      shared = statuses
      return statuses.filter((s) => s === 200).length === 3
    }
    await waitFor(sixShared, 15_000, { every: 500, what: 'the shared bucket back' })
    expect(shared.filter((s) => s === 200)).toHaveLength(3)
    for (const g of gateways) expect(g.child.exitCode).toBeNull()
  }, 60_000)
})
