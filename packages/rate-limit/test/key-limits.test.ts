import http from 'node:http'
import type { AddressInfo } from 'node:net'
import express, { type RequestHandler } from 'express'
import Redis from 'ioredis'
import { gatehouseLocals, type KeyLimitScope } from '@gatehouse/core'
import { collectEvents, fakeClock, sleep, type FakeClock } from '@gatehouse/testing'
import { keyLimits, LocalFallbackStore, memoryStore, redisStore, StoreUnavailableError, type RateLimitStore } from '@gatehouse/rate-limit'
import { deletePrefix, REDIS_URL, testPrefix } from './helpers'

/** What client-auth and the router leave: the key id and its limits, from test headers. */
const authed =
  (limits: Record<string, KeyLimitScope | undefined>): RequestHandler =>
  (req, res, next) => {
    const locals = gatehouseLocals(res)
    const id = String(req.headers['x-key'] ?? '')
    locals.clientKeyId = id
    const l = limits[id]
    if (l) locals.clientKeyLimits = l
    locals.provider = req.path.startsWith('/v1/messages') ? 'claude' : 'openai'
    locals.tokenEstimate = { promptTokens: 10, outputTokens: 90 }
    next()
  }

interface Started {
  url: string
  close(): Promise<void>
}

async function start(...layers: RequestHandler[]): Promise<Started> {
  const app = express()
  app.use(...layers)
  app.use((req, res) => {
    if (req.headers['x-hold'] !== undefined) {
      setTimeout(() => res.json({ ok: true }), Number(req.headers['x-hold']))
      return
    }
    if (req.headers['x-fail'] !== undefined) throw new Error('a later layer failed')
    if (req.headers['x-refuse'] !== undefined) return void res.status(400).json({ error: 'refused later' })
    res.json({ ok: true })
  })
  app.use(((_err, _req, res, _next) => void res.status(500).json({ error: 'x' })) as express.ErrorRequestHandler)
  const server = http.createServer(app)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()) }),
  }
}

const call = (url: string, key: string, headers: Record<string, string> = {}, path = '/v1/chat/completions') =>
  fetch(`${url}${path}`, { method: 'POST', headers: { 'x-key': key, ...headers }, body: '{}' })

describe('keyLimits', () => {
  it("refuses a key at its own limit with 429 naming the key's limit, and leaves another key at 200", async () => {
    const { events, onEvent } = collectEvents()
    const s = await start(authed({ key_a: { requests_per_minute: 2 } }), keyLimits({ store: memoryStore(), onEvent, defaults: { requests_per_minute: 1000 } }))
    try {
      expect((await call(s.url, 'key_a')).status).toBe(200)
      expect((await call(s.url, 'key_a')).status).toBe(200)
      const refused = await call(s.url, 'key_a')
      expect(refused.status).toBe(429)
      const body = (await refused.json()) as { error: { message: string; type: string } }
      expect(body.error.message).toMatch(/^Rate limit exceeded for this API key: 2 requests per minute\. Retry after \d+ seconds?\.$/)
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
      expect(refused.headers.get('ratelimit-policy')).toMatch(/"key-requests_per_minute"; q=2; w=60/)
      expect(refused.headers.get('x-ratelimit-limit-requests')).toBe('2')
      expect(refused.headers.get('x-ratelimit-remaining-requests')).toBe('0')
      expect(refused.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+s$/)
      // Another key (on the defaults) is untouched.
      for (let i = 0; i < 5; i++) expect((await call(s.url, 'key_b')).status).toBe(200)
      expect(events).toHaveLength(1)
      expect(events[0]).toMatchObject({ event_type: 'security_violation', user_id: 'key_a', result: 'rate_limited', details: { code: 'GH_RL_RATE_LIMITED', scope: 'key', limit: 2, own_limit: true } })
    } finally {
      await s.close()
    }
  })

  it('applies a per-provider limit on that provider only, and sends x-ratelimit-* on OpenAI routes only', async () => {
    const s = await start(authed({ key_p: { providers: { claude: { requests_per_minute: 1 } } } }), keyLimits({ store: memoryStore() }))
    try {
      expect((await call(s.url, 'key_p', {}, '/v1/messages')).status).toBe(200)
      const refused = await call(s.url, 'key_p', {}, '/v1/messages')
      expect(refused.status).toBe(429)
      expect(((await refused.json()) as { error: { message: string } }).error.message).toContain('this API key on claude: 1 requests per minute')
      expect(refused.headers.get('x-ratelimit-limit-requests')).toBeNull()
      for (let i = 0; i < 3; i++) expect((await call(s.url, 'key_p')).status).toBe(200)
    } finally {
      await s.close()
    }
  })

  it('reserves the estimate against tokens per minute and monthly tokens, and the quota refusal does not count as own_limit', async () => {
    const { events, onEvent } = collectEvents()
    const store = memoryStore()
    const s = await start(authed({ key_t: { monthly_tokens: 250 } }), keyLimits({ store, onEvent }))
    try {
      // Each request reserves 100; nothing is known of usage (no proxy), so each keeps 100.
      expect((await call(s.url, 'key_t')).status).toBe(200)
      expect((await call(s.url, 'key_t')).status).toBe(200)
      const refused = await call(s.url, 'key_t')
      expect(refused.status).toBe(429)
      const body = (await refused.json()) as { error: { message: string; type: string; code: string } }
      expect(body.error).toMatchObject({ type: 'insufficient_quota', code: 'insufficient_quota' })
      expect(body.error.message).toMatch(/Monthly token quota exhausted for this API key: 50 of 250 tokens left; this request needs up to 100 tokens/)
      expect(events[0]!.details).toMatchObject({ code: 'GH_RL_QUOTA_EXCEEDED', own_limit: false })
    } finally {
      await s.close()
    }
  })

  it('gives back what earlier limits took when a later one refuses', async () => {
    const store = memoryStore()
    const s = await start(authed({ key_r: { requests_per_minute: 5, tokens_per_minute: 150 } }), keyLimits({ store }))
    try {
      expect((await call(s.url, 'key_r')).status).toBe(200) // rpm 4 left, tpm 50 left
      expect((await call(s.url, 'key_r')).status).toBe(429) // tpm refuses: the request is given back
      const rpm = await store.peek({ namespace: 'key-requests_per_minute:key:*', key: 'key_r', capacity: 5, refillPerSecond: 5 / 60 })
      expect(Math.floor(rpm.tokens)).toBe(4)
    } finally {
      await s.close()
    }
  })

  describe.each<[string, () => RateLimitStore]>([
    ['memory', () => memoryStore()],
    ['redis', () => redisStore({ url: REDIS_URL, prefix: testPrefix() })],
  ])('concurrency (%s)', (_kind, makeStore) => {
    let store: RateLimitStore
    beforeEach(() => {
      store = makeStore()
    })
    afterEach(async () => {
      await store.shutdown()
    })
    const slotsHeld = async (key: string): Promise<number> => (await store.slotAcquire({ namespace: 'key-concurrency:key:*', key, limit: 1000, leaseMs: 60_000 }, 'probe')).held - 1

    it('holds one slot per request in flight and gives it back on finish, refusal later, error later and a client gone', async () => {
      const s = await start(authed({ key_c: { concurrency: 2 } }), keyLimits({ store }))
      try {
        // Real time: the sleeps wait for requests to reach and leave the server over real sockets, not for a lease.
        const a = call(s.url, 'key_c', { 'x-hold': '300' })
        const b = call(s.url, 'key_c', { 'x-hold': '300' })
        await sleep(100)
        const third = await call(s.url, 'key_c')
        expect(third.status).toBe(429)
        expect(((await third.json()) as { error: { message: string } }).error.message).toContain('2 concurrent requests')
        expect((await a).status).toBe(200)
        expect((await b).status).toBe(200)
        await sleep(30)
        expect((await call(s.url, 'key_c', { 'x-refuse': '1' })).status).toBe(400)
        expect((await call(s.url, 'key_c', { 'x-fail': '1' })).status).toBe(500)
        // A client that leaves mid-request gives its slot back too.
        const req = http.request(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'x-key': 'key_c', 'x-hold': '5000' } })
        req.on('error', () => undefined)
        req.end('{}')
        await sleep(100)
        expect(await slotsHeld('key_c')).toBe(1)
        await store.slotRelease({ namespace: 'key-concurrency:key:*', key: 'key_c', limit: 1000, leaseMs: 60_000 }, 'probe')
        req.destroy()
        await sleep(100)
        expect(await slotsHeld('key_c')).toBe(0)
      } finally {
        await s.close()
      }
    })
  })

  it('reserves all of a request\'s limits in one all-or-nothing step in Redis: a refusal takes nothing', async () => {
    const prefix = testPrefix()
    const store = redisStore({ url: REDIS_URL, prefix })
    try {
      const rpm = { namespace: 'r', key: 'k', capacity: 5, refillPerSecond: 5 / 60 }
      const quotaRef = { namespace: 'q', key: 'k', limit: 150 }
      const slots = { namespace: 's', key: 'k', limit: 3, leaseMs: 60_000 }
      const first = await store.reserveAll!([{ kind: 'bucket', ref: rpm, amount: 1 }, { kind: 'quota', ref: quotaRef, amount: 100 }, { kind: 'slot', ref: slots, id: 'a' }])
      expect(first.allowed).toBe(true)
      expect(first.results.map((r) => r.allowed)).toEqual([true, true, true])
      expect(first.results[1]!.quota!.used).toBe(100)
      // The quota cannot hold another 100: nothing of the three is taken.
      const second = await store.reserveAll!([{ kind: 'bucket', ref: rpm, amount: 1 }, { kind: 'quota', ref: quotaRef, amount: 100 }, { kind: 'slot', ref: slots, id: 'b' }])
      expect(second.allowed).toBe(false)
      expect(second.results.map((r) => r.allowed)).toEqual([true, false, true])
      expect(Math.floor((await store.peek(rpm)).tokens)).toBe(4)
      expect((await store.quotaGet(quotaRef)).used).toBe(100)
      expect((await store.slotAcquire(slots, 'probe')).held).toBe(2)
    } finally {
      await store.shutdown()
      const c = new Redis(REDIS_URL)
      await deletePrefix(c, prefix)
      c.disconnect()
    }
  })

  it('admits exactly the limit from two stores (two gateways) sharing Redis, under concurrent acquires', async () => {
    const prefix = testPrefix()
    const a = redisStore({ url: REDIS_URL, prefix })
    const b = redisStore({ url: REDIS_URL, prefix })
    try {
      const ref = { namespace: 'c', key: 'k', limit: 25, leaseMs: 60_000 }
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? a : b).slotAcquire(ref, `slot-${i}`)))
      expect(results.filter((r) => r.allowed)).toHaveLength(25)
    } finally {
      await a.shutdown()
      await b.shutdown()
      const c = new Redis(REDIS_URL)
      await deletePrefix(c, prefix)
      c.disconnect()
    }
  })
})

/** A store whose shared half fails while `down` is set. */
function flakyStore(inner: RateLimitStore): RateLimitStore & { down: boolean } {
  const wrapped = { down: false } as RateLimitStore & { down: boolean }
  for (const m of ['take', 'adjust', 'peek', 'resetBucket', 'resetNamespace', 'quotaReserve', 'quotaSettle', 'quotaGet', 'quotaReset', 'slotAcquire', 'slotRelease'] as const) {
    ;(wrapped as unknown as Record<string, unknown>)[m] = (...args: unknown[]) =>
      wrapped.down ? Promise.reject(new StoreUnavailableError('down')) : (inner[m] as (...a: unknown[]) => Promise<unknown>).apply(inner, args)
  }
  Object.assign(wrapped, { kind: 'flaky', localKeys: false, ping: () => Promise.resolve(!wrapped.down), stats: () => inner.stats(), shutdown: () => inner.shutdown() })
  return wrapped
}

describe('LocalFallbackStore (store.on_error: local)', () => {
  let clock: FakeClock | undefined
  afterEach(() => clock?.restore())

  it('enforces limit ÷ replicas locally while the shared store is down, says so, and shares again once it answers', async () => {
    // Only Date is fake (the retry is a time check): the requests are real round trips.
    clock = fakeClock({ timers: false })
    const shared = flakyStore(memoryStore())
    const logger = { lines: [] as string[], error: (m: string) => void logger.lines.push(`error ${m}`), warn: () => undefined, info: (m: string) => void logger.lines.push(`info ${m}`), debug: () => undefined }
    const store = new LocalFallbackStore({ store: shared, replicas: 3, retryMs: 100, logger })
    const s = await start(authed({ key_l: { requests_per_minute: 30 } }), keyLimits({ store }))
    try {
      expect((await call(s.url, 'key_l')).status).toBe(200)
      shared.down = true
      const statuses: number[] = []
      for (let i = 0; i < 15; i++) statuses.push((await call(s.url, 'key_l')).status)
      // 30 ÷ 3 = 10 in this replica's own bucket.
      expect(statuses.filter((x) => x === 200)).toHaveLength(10)
      expect(store.degraded()).toBe(true)
      expect(store.fallbackCount()).toBeGreaterThanOrEqual(15)
      expect(logger.lines.filter((l) => l.startsWith('error'))).toHaveLength(1)
      shared.down = false
      await clock.advance(100)
      // Back on the shared bucket: 29 left there.
      expect((await call(s.url, 'key_l')).status).toBe(200)
      expect(store.degraded()).toBe(false)
      expect(logger.lines.some((l) => l.startsWith('info') && l.includes('shared again'))).toBe(true)
    } finally {
      await s.close()
    }
  })

  it('gives a quota its share of what was left when Redis was last read', async () => {
    const shared = flakyStore(memoryStore())
    const store = new LocalFallbackStore({ store: shared, replicas: 2, retryMs: 60_000 })
    const ref = { namespace: 'q', key: 'k', limit: 1000 }
    expect((await store.quotaReserve(ref, 600)).allowed).toBe(true)
    shared.down = true
    // 400 were left: this replica may spend 200.
    expect((await store.quotaReserve(ref, 200)).allowed).toBe(true)
    expect((await store.quotaReserve(ref, 1)).allowed).toBe(false)
  })
})
