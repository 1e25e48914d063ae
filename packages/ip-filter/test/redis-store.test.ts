import { randomBytes } from 'node:crypto'
import Redis, { type RedisOptions } from 'ioredis'
import { isGatehouseError } from '@gatehouse/core'
import { collectEvents, createTestApp, freePort, sleep, waitFor } from '@gatehouse/testing'
import { ipFilter, RedisDenylistStore, type IpFilterMiddleware, type IpFilterOptions } from '@gatehouse/ip-filter'
import { fakeLogger, send, servers } from './helpers'

const PREFIX = `gh-test-${randomBytes(6).toString('hex')}:`
const clients: Redis[] = []
const stores: RedisDenylistStore[] = []
const filters: IpFilterMiddleware[] = []
const srv = servers()

function client(options: RedisOptions = {}): Redis {
  const c = new Redis({ host: '127.0.0.1', port: 6379, disconnectTimeout: 100, ...options })
  c.on('error', () => undefined)
  clients.push(c)
  return c
}

function store(c: Redis, extra: Partial<ConstructorParameters<typeof RedisDenylistStore>[0]> = {}): RedisDenylistStore {
  const s = new RedisDenylistStore({ client: c, prefix: PREFIX, ...extra })
  stores.push(s)
  return s
}

async function gateway(options: IpFilterOptions) {
  const { events, onEvent } = collectEvents()
  const filter = ipFilter({ onEvent, ...options })
  filters.push(filter)
  const app = createTestApp(filter)
  app.set('trust proxy', 'loopback')
  const { url } = await srv.serve(app)
  return { url, filter, events }
}

afterEach(async () => {
  await srv.closeAll()
  await Promise.all(filters.splice(0).map((f) => f.shutdown()))
  await Promise.all(stores.splice(0).map((s) => s.shutdown()))
})

afterAll(async () => {
  const admin = client()
  let cursor = '0'
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) await admin.del(...keys)
  } while (cursor !== '0')
  // disconnect() on a client that has already ended would arm ioredis's stream-destroy timer again
  for (const c of clients) if (c.status !== 'end') c.disconnect()
})

describe('RedisDenylistStore', () => {
  it('propagates an entry added on one gateway instance to another within one second', async () => {
    // Two independent instances: each its own filter, store, command and subscriber connections.
    const a = await gateway({ store: store(client()) })
    const b = await gateway({ store: store(client()) })
    await Promise.all([a.filter.ready(), b.filter.ready()])
    const xff = { 'x-forwarded-for': '203.0.113.50' }
    expect((await send(b.url, '/', xff)).status).toBe(200)

    const started = process.hrtime.bigint()
    await a.filter.add('203.0.113.50', { reason: 'seen on instance a' })
    const addMs = Number(process.hrtime.bigint() - started) / 1e6
    // Instance b: poll with check() until it refuses (no request needed for the measurement) ...
    let propagatedMs = -1
    for (let i = 0; i < 1000; i++) {
      if (!b.filter.check('203.0.113.50').allowed) {
        propagatedMs = Number(process.hrtime.bigint() - started) / 1e6
        break
      }
      await sleep(1)
    }
    // ... and the next real request to b is refused.
    const refused = await send(b.url, '/v1/messages', xff)
    const requestMs = Number(process.hrtime.bigint() - started) / 1e6
    console.log(
      `ip-filter redis propagation: add() took ${addMs.toFixed(1)} ms; instance b refused after ${propagatedMs.toFixed(1)} ms ` +
        `(check), first refused request answered at ${requestMs.toFixed(1)} ms`,
    )
    expect(propagatedMs).toBeGreaterThanOrEqual(0)
    expect(propagatedMs).toBeLessThan(1000)
    expect(refused.status).toBe(403)
    expect(refused.json).toEqual({ type: 'error', error: { type: 'permission_error', message: 'Access denied.' } })
    expect(b.events).toEqual([
      expect.objectContaining({ ip: '203.0.113.50', result: 'ip_denied', details: expect.objectContaining({ list: 'runtime', reason: 'seen on instance a' }) }),
    ])

    const listed = await b.filter.list()
    expect(listed).toEqual([{ ip: '203.0.113.50', reason: 'seen on instance a', addedAt: expect.any(Date), expiresAt: null }])

    // Removal propagates the same way.
    expect(await b.filter.remove('203.0.113.50')).toBe(true)
    let cleared = false
    for (let i = 0; i < 1000 && !cleared; i++) {
      cleared = a.filter.check('203.0.113.50').allowed
      if (!cleared) await sleep(1)
    }
    expect(cleared).toBe(true)
    expect((await send(a.url, '/', xff)).status).toBe(200)
  })

  it('propagates with fail-fast clients (enableOfflineQueue: false), as the gateway configures them', async () => {
    const failFast = { enableOfflineQueue: false, maxRetriesPerRequest: 1 }
    const a = await gateway({ store: store(client(failFast)) })
    const b = await gateway({ store: store(client(failFast)) })
    await Promise.all([a.filter.ready(), b.filter.ready()])
    await sleep(50)
    await a.filter.add('203.0.113.77', { reason: 'fail-fast clients' })
    const refusedAfter = await waitFor(() => !b.filter.check('203.0.113.77').allowed, 1000, { every: 2 })
    expect(refusedAfter).toBeGreaterThanOrEqual(0)
    await a.filter.remove('203.0.113.77')
  })

  it('expires an entry with a real Redis TTL on every instance', async () => {
    const c = client()
    const a = await gateway({ store: store(client()) })
    const b = await gateway({ store: store(client()) })
    await Promise.all([a.filter.ready(), b.filter.ready()])
    const entry = await a.filter.add('2001:db8:dead::/48', { reason: 'short', ttlSeconds: 1 })
    expect(entry.expiresAt!.getTime() - entry.addedAt.getTime()).toBe(1000)
    const key = `${PREFIX}denylist:entry:2001:db8:dead::/48`
    const pttl = await c.pttl(key)
    expect(pttl).toBeGreaterThan(0)
    expect(pttl).toBeLessThanOrEqual(1000)

    for (let i = 0; i < 500 && b.filter.check('2001:db8:dead::1').allowed; i++) await sleep(2)
    expect((await send(b.url, '/', { 'x-forwarded-for': '2001:db8:dead::1' })).status).toBe(403)
    const [listed] = await b.filter.list()
    expect(listed).toMatchObject({ ip: '2001:db8:dead::/48', reason: 'short' })
    expect(listed!.expiresAt?.getTime()).toBe(entry.expiresAt!.getTime())

    // Real time: the entry's key expires in Redis (PEXPIRE), which no fake clock of ours moves.
    await sleep(Math.max(0, entry.expiresAt!.getTime() - Date.now()) + 50)
    expect((await send(a.url, '/', { 'x-forwarded-for': '2001:db8:dead::1' })).status).toBe(200)
    expect((await send(b.url, '/', { 'x-forwarded-for': '2001:db8:dead::1' })).status).toBe(200)
    expect(await c.exists(key)).toBe(0)
    expect(await b.filter.list()).toEqual([])
    await waitFor(async () => (await c.sismember(`${PREFIX}denylist:index`, '2001:db8:dead::/48')) !== 1, 2000, { every: 5 })
    expect(await c.sismember(`${PREFIX}denylist:index`, '2001:db8:dead::/48')).toBe(0)
  })

  it('reloads on its poll interval even without a notification', async () => {
    const s = store(client(), { pollIntervalMs: 100 })
    const g = await gateway({ store: s })
    await g.filter.ready()
    // Written straight into Redis, as another (older) instance might, without a publish.
    const c = client()
    await c.set(`${PREFIX}denylist:entry:198.51.100.200`, JSON.stringify({ reason: 'direct', addedAt: Date.now(), expiresAt: null }))
    await c.sadd(`${PREFIX}denylist:index`, '198.51.100.200')
    await waitFor(() => !g.filter.check('198.51.100.200').allowed, 2000)
    expect(g.filter.check('198.51.100.200')).toMatchObject({ allowed: false, reason: 'direct' })
    await c.del(`${PREFIX}denylist:entry:198.51.100.200`)
    await c.srem(`${PREFIX}denylist:index`, '198.51.100.200')
  })

  it('ignores malformed values with a warning', async () => {
    const logger = fakeLogger()
    const c = client()
    await c.set(`${PREFIX}denylist:entry:198.51.100.201`, 'not json')
    await c.sadd(`${PREFIX}denylist:index`, '198.51.100.201')
    const s = store(client(), { logger })
    expect(await s.list()).toEqual([])
    expect(logger.warn).toHaveBeenCalledWith('@gatehouse/ip-filter: ignoring a malformed denylist entry in Redis', expect.any(Object))
    await c.del(`${PREFIX}denylist:entry:198.51.100.201`)
    await c.srem(`${PREFIX}denylist:index`, '198.51.100.201')
  })

  it.each<[unknown, string]>([
    [{}, 'needs { client: an ioredis client }'],
    [{ client: {} }, 'needs { client: an ioredis client }'],
    [{ client: 'redis://x' }, 'needs { client'],
  ])('refuses construction with %j', (options, message) => {
    expect(() => new RedisDenylistStore(options as never)).toThrow(expect.objectContaining({ code: 'GH_IPF_STORE_INVALID', message: expect.stringContaining(message) }))
  })

  it.each<[string, unknown]>([
    ['timeoutMs', 0],
    ['timeoutMs', 1.5],
    ['pollIntervalMs', -1],
    ['prefix', 7],
    ['logger', {}],
  ])('refuses %s = %j', (name, value) => {
    const c = client({ lazyConnect: true })
    expect(() => new RedisDenylistStore({ client: c, [name]: value } as never)).toThrow(
      expect.objectContaining({ code: 'GH_IPF_STORE_INVALID', message: expect.stringContaining(name) }),
    )
  })
})

describe('Redis unreachable (a closed port)', () => {
  async function downGateway(onStoreError: 'allow' | 'deny') {
    const port = await freePort()
    const logger = fakeLogger()
    const c = client({ port, retryStrategy: () => 100, maxRetriesPerRequest: 1 })
    const s = store(c, { timeoutMs: 200 })
    const g = await gateway({ store: s, onStoreError, logger, denylist: ['192.0.2.0/24'] })
    return { ...g, logger, store: s }
  }

  it("onStoreError: 'deny' answers 503 in the provider shape, with Retry-After, and an event", async () => {
    const { url, events, filter } = await downGateway('deny')
    const r = await send(url, '/v1/chat/completions', { 'x-forwarded-for': '198.51.100.1' })
    expect(r.status).toBe(503)
    expect(r.json).toEqual({
      error: { message: 'Service temporarily unavailable.', type: 'server_error', param: null, code: 'service_unavailable' },
    })
    expect(r.headers['retry-after']).toBe('5')
    expect(r.headers['cache-control']).toBe('no-store')
    expect(r.body).not.toMatch(/redis|ECONNREFUSED|127\.0\.0\.1/i)
    expect(events).toEqual([expect.objectContaining({ event_type: 'security_violation', ip: '198.51.100.1', result: 'store_unavailable' })])
    expect(filter.isStoreHealthy()).toBe(false)

    const err = await filter.add('198.51.100.9').then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isGatehouseError(err)).toBe(true)
    expect(err).toMatchObject({ code: 'GH_IPF_STORE_UNAVAILABLE', statusCode: 503 })
  })

  it("onStoreError: 'allow' serves, logs at error, marks the decision degraded, and still applies the static lists", async () => {
    const { url, events, logger } = await downGateway('allow')
    const r = await send(url, '/', { 'x-forwarded-for': '198.51.100.1' })
    expect(r.status).toBe(200)
    expect(r.json).toMatchObject({ locals: { ipFilter: { ip: '198.51.100.1', allowed: true, degraded: true } } })
    expect(logger.error).toHaveBeenCalledWith('@gatehouse/ip-filter: could not load the runtime denylist', {
      error: expect.stringContaining('unreachable'),
    })
    expect(logger.error).toHaveBeenCalledWith(expect.stringContaining("serving with the entries loaded last (onStoreError: 'allow')"))
    const denied = await send(url, '/', { 'x-forwarded-for': '192.0.2.1' })
    expect(denied.status).toBe(403)
    expect(events).toEqual([expect.objectContaining({ ip: '192.0.2.1', result: 'ip_denied' })])
  })

  it('list() rejects with GH_IPF_STORE_UNAVAILABLE within the timeout', async () => {
    const { store: s } = await downGateway('allow')
    const started = Date.now()
    await expect(s.list()).rejects.toMatchObject({ code: 'GH_IPF_STORE_UNAVAILABLE', statusCode: 503 })
    expect(Date.now() - started).toBeLessThan(1000)
    expect(s.isAvailable()).toBe(false)
  })

  it('a store whose connection ends turns a healthy gateway to 503 under deny', async () => {
    const c = client()
    const g = await gateway({ store: store(c, { timeoutMs: 200 }), onStoreError: 'deny' })
    await g.filter.ready()
    expect((await send(g.url)).status).toBe(200)
    expect(g.filter.isStoreHealthy()).toBe(true)
    c.disconnect()
    for (let i = 0; i < 100 && c.status !== 'end'; i++) await sleep(5)
    expect((await send(g.url)).status).toBe(503)
    expect(g.filter.isStoreHealthy()).toBe(false)
  })
})
