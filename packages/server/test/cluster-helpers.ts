import { spawn, type ChildProcess } from 'node:child_process'
import type http from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import net, { type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Redis from 'ioredis'
import { freePort, httpRequest, MockUpstream, sleep } from '@gatehouse/testing'

/** What the cluster tests share: a port, a Redis of their own, their config, a round-robin TCP balancer, a request, a wait. */

export { freePort } from '@gatehouse/testing'

/**
 * The config every cluster test's gateways start from: port 0, no per-address limiting, three
 * replicas on the test's Redis under `keyPrefix`, no metrics, no alerts; `rest` adds the test's own
 * sections (providers, management, auth).
 */
export const clusterYaml = (redisPort: number, keyPrefix: string, rest: string): string => `server:
  port: 0
  security: { rate_limiting: { enabled: false } }
store: { type: redis, url: "redis://127.0.0.1:${redisPort}", key_prefix: "${keyPrefix}", on_error: local, replicas: 3 }
metrics: { enabled: false }
alerts: []
${rest}`

/** What a cluster test starts before its gateways: a directory `gh-<label>-*`, the mock provider, a Redis of its own. */
export async function clusterBase(label: string): Promise<{ dir: string; upstream: MockUpstream; redisPort: number; redis: ChildProcess }> {
  const dir = mkdtempSync(join(tmpdir(), `gh-${label}-`))
  const upstream = await MockUpstream.start()
  try {
    const redisPort = await freePort()
    return { dir, upstream, redisPort, redis: await startRedis(redisPort) }
  } catch (err) {
    await upstream.close()
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
}

/** A Redis of this test's own, so that killing it touches no other test. */
export async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
  probe.on('error', () => undefined)
  for (let i = 0; i < 100; i++) {
    try {
      await probe.connect()
      await probe.ping()
      probe.disconnect()
      return child
    } catch {
      await sleep(50)
    }
  }
  throw new Error('redis-server did not start')
}

/** A round-robin TCP balancer: each new connection goes to the next gateway. */
export async function startBalancer(targets: () => number[]): Promise<{ url: string; close(): Promise<void> }> {
  let next = 0
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const ports = targets()
    const upstream = net.connect(ports[next++ % ports.length]!, '127.0.0.1')
    sockets.add(client).add(upstream)
    client.pipe(upstream).pipe(client)
    const end = (): void => {
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy()
      server.close(() => r())
    }),
  }
}

export interface Reply {
  status: number
  body: string
}

/** One HTTP request, its status and body (no agent unless given: a new connection each time). */
export async function request(url: string, method: string, path: string, headers: Record<string, string>, body?: unknown, agent: http.Agent | false = false): Promise<Reply> {
  const text = body === undefined ? undefined : JSON.stringify(body)
  const reply = await httpRequest(url, { method, path, agent, headers: { ...(text !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, ...(text !== undefined ? { body: text } : {}) })
  return { status: reply.status, body: reply.body }
}

/** The time until `check` holds, polling every 20 ms; throws past `ms`. */
export async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now()
  for (;;) {
    if (await check()) return Date.now() - started
    if (Date.now() - started > ms) throw new Error(`not within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Every key and value in a Redis, as one text: what a test scans for secrets that must not be there. */
export async function redisContents(port: number): Promise<{ keys: string[]; text: string }> {
  const client = new Redis({ port, host: '127.0.0.1' })
  try {
    const keys = await client.keys('*')
    let text = keys.join('\n')
    for (const k of keys) {
      const type = await client.type(k)
      if (type === 'string') text += await client.get(k)
      else if (type === 'hash') text += JSON.stringify(await client.hgetall(k))
      else if (type === 'set') text += (await client.smembers(k)).join('\n')
      else if (type === 'zset') text += (await client.zrange(k, 0, -1)).join('\n')
      else if (type === 'list') text += (await client.lrange(k, 0, -1)).join('\n')
    }
    return { keys, text }
  } finally {
    client.disconnect()
  }
}

/** Stop what a cluster test started: the balancer, the gateways (SIGTERM, waited for), its Redis, the mock upstream, its directory. */
export async function stopCluster(c: {
  lb: { close(): Promise<void> } | undefined
  gateways: ReadonlyArray<{ child: ChildProcess; exited: Promise<unknown> }>
  redis: ChildProcess | undefined
  upstream: { close(): Promise<void> } | undefined
  dir: string | undefined
}): Promise<void> {
  await c.lb?.close()
  for (const g of c.gateways) g.child.kill('SIGTERM')
  await Promise.all(c.gateways.map((g) => g.exited))
  c.redis?.kill('SIGKILL')
  await c.upstream?.close()
  if (c.dir) rmSync(c.dir, { recursive: true, force: true })
}

/**
 * Start `n` gateways at once into `into`: those that did start are there even when another did not
 * (then this rejects), so the test's afterAll stops them instead of leaving them running.
 */
export async function startGateways<T>(n: number, start: () => Promise<T>, into: T[]): Promise<void> {
  const settled = await Promise.allSettled(Array.from({ length: n }, start))
  for (const s of settled) if (s.status === 'fulfilled') into.push(s.value)
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
  if (failed) throw failed.reason
}
