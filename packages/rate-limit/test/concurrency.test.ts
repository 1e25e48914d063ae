import Redis from 'ioredis'
import { createTestApp, listen, type RunningServer } from '@gatehouse/testing'
import { memoryStore, rateLimit, redisStore, type RateLimitStore } from '@gatehouse/rate-limit'
import { burst, deletePrefix, REDIS_URL, testPrefix } from './helpers'

const prefix = testPrefix()
let admin: Redis

beforeAll(() => {
  admin = new Redis(REDIS_URL)
})
afterAll(async () => {
  await deletePrefix(admin, prefix)
  admin.disconnect()
})

describe.each<[string, () => RateLimitStore]>([
  ['memory', () => memoryStore()],
  // A command timeout well above a loaded machine's Redis latency: this is about atomicity, and a
  // timed-out command fails open (onStoreError allow), which admitted 107 once at the 500 ms default.
  ['redis', () => redisStore({ url: REDIS_URL, prefix: `${prefix}${Math.random().toString(36).slice(2)}:`, commandTimeoutMs: 10_000 })],
])('200 concurrent requests against a burst of 100 (%s store)', (_kind, makeStore) => {
  let server: RunningServer
  let store: RateLimitStore

  beforeEach(async () => {
    store = makeStore()
  })
  afterEach(async () => {
    await server?.close()
    await store.shutdown()
  })

  it('admits exactly 100', async () => {
    // One token per minute: nothing refills while the 200 requests are in flight.
    const limiter = rateLimit({ scope: 'global', requestsPerMinute: 1, burst: 100, store })
    server = await listen(createTestApp(limiter))
    const results = await burst(200, server.url, { path: '/v1/chat/completions', body: '{}' })
    const statuses = results.map((r) => r.status)
    expect(statuses.filter((s) => s === 200)).toHaveLength(100)
    expect(statuses.filter((s) => s === 429)).toHaveLength(100)
    for (const r of results.filter((x) => x.status === 429)) {
      expect(JSON.parse(r.body)).toMatchObject({ error: { type: 'requests', code: 'rate_limit_exceeded' } })
      expect(r.headers['ratelimit-remaining']).toBe('0')
      expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    }
    // Each admitted request saw a distinct remaining count: 99 … 0.
    const remaining = results
      .filter((r) => r.status === 200)
      .map((r) => Number(r.headers['ratelimit-remaining']))
    expect(new Set(remaining).size).toBe(100)
    expect(Math.min(...remaining)).toBe(0)
    expect(Math.max(...remaining)).toBe(99)
    expect(limiter.stats()).toMatchObject({ limited: 100, storeErrors: 0 })
  })
})
