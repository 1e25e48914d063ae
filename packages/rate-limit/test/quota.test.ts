import http from 'node:http'
import { readdir, readFile, mkdtemp, stat, writeFile, chmod } from 'node:fs/promises'
import { join } from 'node:path'
import type { RequestHandler } from 'express'
import Redis from 'ioredis'
import request from 'supertest'
import { gatehouseLocals } from '@gatehouse/core'
import { collectEvents, createTestApp, listen, MockUpstream, recordingLogger, type RunningServer, sleep, tempDirs } from '@gatehouse/testing'
import { memoryStore, quota, redisStore, type RateLimitStore } from '@gatehouse/rate-limit'
import { deletePrefix, REDIS_URL, send, testPrefix } from './helpers'
import { proxyTo } from './proxy'

const prefix = testPrefix()
let admin: Redis
let dir: string
const tmp = tempDirs('rl-quota')

beforeAll(async () => {
  admin = new Redis(REDIS_URL)
  dir = tmp.make()
})
afterAll(async () => {
  await deletePrefix(admin, prefix)
  admin.disconnect()
  tmp.cleanup()
})

const reportUsage: RequestHandler = (req, res, next) => {
  const input = Number(req.header('x-test-input'))
  const output = Number(req.header('x-test-output'))
  if (Number.isFinite(input) && Number.isFinite(output))
    gatehouseLocals(res).usage = { inputTokens: input, outputTokens: output }
  next()
}

const auth: RequestHandler = (req, res, next) => {
  const id = req.header('x-test-key-id')
  if (id) gatehouseLocals(res).clientKeyId = id
  next()
}

const nextMonthStart = (): number => {
  const d = new Date()
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)
}

describe('quota refusals', () => {
  it.each<[string, string, unknown]>([
    [
      'openai',
      '/v1/chat/completions',
      {
        error: {
          message: expect.stringMatching(/^Monthly token quota exhausted for provider openai/),
          type: 'insufficient_quota',
          param: null,
          code: 'insufficient_quota',
        },
      },
    ],
    [
      'claude',
      '/v1/messages',
      {
        type: 'error',
        error: {
          type: 'rate_limit_error',
          message: expect.stringMatching(/^Monthly token quota exhausted for provider claude/),
        },
      },
    ],
    [
      'gemini',
      '/v1beta/models/g:generateContent',
      {
        error: {
          code: 429,
          status: 'RESOURCE_EXHAUSTED',
          message: expect.stringMatching(/^Monthly token quota exhausted for provider gemini/),
        },
      },
    ],
  ])(
    'answers 429 in the %s shape with Retry-After until the month turns, RateLimit-* headers and an event',
    async (provider, path, expected) => {
      const { events, onEvent } = collectEvents()
      const limiter = quota({
        scope: 'provider',
        providers: { [provider]: { limit: 100, reset: 'monthly' } },
        defaultMaxTokens: 90,
        onEvent,
      })
      const app = createTestApp(limiter)
      await request(app).post(path).set('content-type', 'application/json').send('{}').expect(200) // 1 + 90 reserved
      const res = await request(app).post(path).set('content-type', 'application/json').send('{}')
      expect(res.status).toBe(429)
      expect(res.body).toEqual(expected)
      expect(res.body.error.message).toMatch(
        /9 of 100 tokens left, this request needs up to 91\. The quota resets at \d{4}-\d\d-01T00:00:00\.000Z\./,
      )
      const untilReset = (nextMonthStart() - Date.now()) / 1000
      expect(Math.abs(Number(res.headers['retry-after']) - untilReset)).toBeLessThan(5)
      expect(res.headers['ratelimit-limit']).toBe('100')
      expect(res.headers['ratelimit-remaining']).toBe('9')
      expect(res.headers['ratelimit-reset']).toBe(res.headers['retry-after'])
      expect(res.headers['ratelimit-policy']).toMatch(/^100;w=(2419200|2505600|2592000|2678400)$/) // 28 to 31 days
      expect(res.headers['cache-control']).toBe('no-store')
      expect(events).toEqual([
        {
          timestamp: expect.any(String),
          event_type: 'security_violation',
          provider,
          ip: expect.stringMatching(/127\.0\.0\.1/),
          result: 'quota_exceeded',
          details: {
            code: 'GH_RL_QUOTA_EXCEEDED',
            scope: 'provider',
            limiter: 'provider',
            limit_type: 'quota',
            limit: 100,
            retry_after_seconds: Number(res.headers['retry-after']),
            // a provider's bucket is shared: it never counts towards blocking the caller
            own_limit: false,
          },
        },
      ])
      expect(await limiter.usage(provider)).toEqual({
        limit: 100,
        used: 91,
        remaining: 9,
        resetsAt: new Date(nextMonthStart()),
      })
      // A request that reserves no tokens is never refused by a quota.
      await request(app).get(path).expect(200)
    },
  )

  it('counts per client key with per-key limits, and leaves requests without a key to other limits', async () => {
    const { events, onEvent } = collectEvents()
    const limiter = quota({
      scope: 'key',
      limit: 1000,
      keys: { key_small: { limit: 50 } },
      defaultMaxTokens: 40,
      onEvent,
    })
    const app = createTestApp(auth, limiter, reportUsage)
    await request(app).post('/v1/messages').set('x-test-key-id', 'key_small').send('{}').expect(200)
    const refused = await request(app).post('/v1/messages').set('x-test-key-id', 'key_small').send('{}')
    expect(refused.status).toBe(429)
    expect(refused.body.error.message).toMatch(/for this API key: 9 of 50 tokens left/)
    for (let i = 0; i < 5; i++)
      await request(app).post('/v1/messages').set('x-test-key-id', 'key_big').send('{}').expect(200)
    for (let i = 0; i < 5; i++) await request(app).post('/v1/messages').send('{}').expect(200) // no key: not counted here
    expect(events).toHaveLength(1)
    expect(events[0]).toMatchObject({
      user_id: 'key_small',
      result: 'quota_exceeded',
      details: { scope: 'key' },
    })
    expect(await limiter.usage('key_big')).toMatchObject({ limit: 1000, used: 5 * 41 })
  })

  it('looks limits up by own key only (a key id such as "constructor" gets the default)', async () => {
    const limiter = quota({ scope: 'key', limit: 7, keys: { key_x: { limit: 100 } }, defaultMaxTokens: 5 })
    const app = createTestApp(auth, limiter)
    await request(app).post('/v1/messages').set('x-test-key-id', 'constructor').send('{}').expect(200)
    await request(app).post('/v1/messages').set('x-test-key-id', 'constructor').send('{}').expect(429)
    expect(await limiter.usage('constructor')).toMatchObject({ limit: 7, used: 6 })
    expect(await limiter.usage('__proto__')).toMatchObject({ limit: 7, used: 0 })
  })

  it('settles against reported usage, and keeps the reservation without it', async () => {
    const limiter = quota({ scope: 'global', limit: 10_000, defaultMaxTokens: 500 })
    const app = createTestApp(limiter, reportUsage)
    await request(app)
      .post('/v1/chat/completions')
      .set('x-test-input', '10')
      .set('x-test-output', '20')
      .send('{}')
      .expect(200)
    await sleep(10)
    expect((await limiter.usage('global'))?.used).toBe(30)
    await request(app).post('/v1/chat/completions').send('{}').expect(200)
    await sleep(10)
    expect((await limiter.usage('global'))?.used).toBe(30 + 501)
  })
})

describe('quota counters in memory, kept in a file', () => {
  it('survive a restart through a 0600 file written atomically', async () => {
    const file = join(dir, 'restart.json')
    const store = memoryStore({ quotaFile: file, quotaFlushMs: 10 })
    const limiter = quota({ scope: 'provider', limit: 1000, store, defaultMaxTokens: 99 })
    const app = createTestApp(limiter, reportUsage)
    await request(app)
      .post('/v1/messages')
      .set('x-test-input', '100')
      .set('x-test-output', '23')
      .send('{}')
      .expect(200)
    await request(app)
      .post('/v1/chat/completions')
      .set('x-test-input', '1')
      .set('x-test-output', '1')
      .send('{}')
      .expect(200)
    await sleep(20)
    await store.shutdown()
    const st = await stat(file)
    expect(st.mode & 0o777).toBe(0o600)
    expect((await readdir(dir)).filter((f) => f.includes('.tmp'))).toEqual([]) // no temp file left behind
    const saved = JSON.parse(await readFile(file, 'utf8')) as {
      version: number
      quotas: Record<string, { used: number }>
    }
    expect(saved.version).toBe(1)
    expect(
      Object.values(saved.quotas)
        .map((q) => q.used)
        .sort((a, b) => a - b),
    ).toEqual([2, 123])

    const restarted = memoryStore({ quotaFile: file })
    const again = quota({ scope: 'provider', limit: 1000, store: restarted })
    expect(await again.usage('claude')).toMatchObject({ used: 123, remaining: 877 })
    expect(await again.usage('openai')).toMatchObject({ used: 2 })
    await restarted.shutdown()
  })

  it('writes on shutdown even before the flush interval', async () => {
    const file = join(dir, 'shutdown.json')
    const store = memoryStore({ quotaFile: file, quotaFlushMs: 60_000 })
    const limiter = quota({ scope: 'global', limit: 1000, store, defaultMaxTokens: 9 })
    await request(createTestApp(limiter)).post('/x').send('{}').expect(200)
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' })
    await store.shutdown()
    expect(JSON.parse(await readFile(file, 'utf8')).quotas).toEqual({
      'quota:global\u0000global': { period: expect.any(Number), used: 10 },
    })
  })

  it('tightens a group-readable quota file to 0600 and says so', async () => {
    const file = join(dir, 'loose.json')
    await writeFile(file, JSON.stringify({ version: 1, quotas: {} }))
    await chmod(file, 0o644)
    const logger = recordingLogger()
    const store = memoryStore({ quotaFile: file, logger })
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect(logger.calls).toEqual([
      { level: 'warn', message: '@gatehouse/rate-limit: quota file mode 644 tightened to 600' },
    ])
    await store.shutdown()
  })

  it('logs and counts a write that fails, and retries on the next change', async () => {
    const sub = await mkdtemp(join(dir, 'ro-'))
    const file = join(sub, 'q.json')
    const logger = recordingLogger()
    const store = memoryStore({ quotaFile: file, quotaFlushMs: 0, logger })
    await chmod(sub, 0o500)
    try {
      const limiter = quota({ scope: 'global', limit: 100, store, defaultMaxTokens: 1 })
      await request(createTestApp(limiter)).post('/x').send('{}').expect(200)
      await store.flush()
      if (process.getuid?.() === 0) {
        // root writes anyway: nothing failed
        expect(store.stats().errors).toBe(0)
      } else {
        expect(store.stats().errors).toBeGreaterThanOrEqual(1)
        expect(logger.calls[0]).toMatchObject({
          level: 'error',
          message: '@gatehouse/rate-limit: could not write the quota file',
          meta: { code: 'EACCES' },
        })
      }
    } finally {
      await chmod(sub, 0o700)
    }
    await store.shutdown()
    expect(JSON.parse(await readFile(file, 'utf8')).quotas['quota:global\u0000global'].used).toBe(2)
  })

  it('starts again at 00:00 UTC on the first of the month, and drops settlements of the month that ended', async () => {
    let now = Date.UTC(2026, 0, 31, 23, 59, 0)
    const store = memoryStore({ clock: () => now })
    const limiter = quota({ scope: 'global', limit: 100, store, defaultMaxTokens: 40 })
    const app = createTestApp(
      limiter,
      (req, res, next) => {
        // A slow response: the month turns before it ends.
        if (req.header('x-test-turn-month')) now = Date.UTC(2026, 1, 1, 0, 0, 1)
        next()
      },
      reportUsage,
    )
    await request(app).post('/x').send('{}').expect(200) // 41
    await request(app).post('/x').send('{}').expect(200) // 82
    const refused = await request(app).post('/x').send('{}')
    expect(refused.status).toBe(429)
    expect(refused.headers['retry-after']).toBe('60') // in the store's clock: one minute to February
    expect(await limiter.usage('global')).toEqual({
      limit: 100,
      used: 82,
      remaining: 18,
      resetsAt: new Date(Date.UTC(2026, 1, 1)),
    })
    // Admitted in January, usage reported in February: it is January's, not February's.
    await request(app)
      .get('/x')
      .set('x-test-input', '1')
      .set('x-test-output', '1')
      .set('x-test-turn-month', '1')
      .expect(200)
    await sleep(10)
    expect(await limiter.usage('global')).toEqual({
      limit: 100,
      used: 0,
      remaining: 100,
      resetsAt: new Date(Date.UTC(2026, 2, 1)),
    })
    await request(app).post('/x').send('{}').expect(200)
    expect((await limiter.usage('global'))?.used).toBe(41)
  })
})

describe.each<[string, () => RateLimitStore]>([
  ['memory', () => memoryStore()],
  ['redis', () => redisStore({ url: REDIS_URL, prefix: `${prefix}${Math.random().toString(36).slice(2)}:` })],
])('50 concurrent streams at the edge of a token quota (%s store)', (_kind, makeStore) => {
  let upstream: MockUpstream
  let server: RunningServer
  let store: RateLimitStore

  beforeAll(async () => {
    upstream = await MockUpstream.start({ chunks: 3, chunkIntervalMs: 25 })
  })
  afterAll(async () => {
    await upstream.close()
  })
  beforeEach(() => {
    store = makeStore()
  })
  afterEach(async () => {
    await server?.close()
    await store.shutdown()
  })

  it('overspends by at most one reservation and never shows a negative remaining quota', async () => {
    const body = JSON.stringify({
      model: 'gpt-4o',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'z'.repeat(200) }],
    })
    const defaultMaxTokens = 64
    const reservation = Math.ceil(Buffer.byteLength(body) / 4) + defaultMaxTokens
    const actual = Math.ceil(Buffer.byteLength(body) / 4) + 15 // what the mock reports: input bytes / 4, 5 per chunk
    const limit = 10 * reservation + Math.floor(reservation / 2)
    const { events, onEvent } = collectEvents()
    const limiter = quota({
      scope: 'provider',
      providers: { openai: { limit } },
      defaultMaxTokens,
      store,
      onEvent,
    })
    server = await listen(createTestApp(limiter, proxyTo(upstream)))

    const samples: number[] = []
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        const u = await limiter.usage('openai')
        if (u) samples.push(u.remaining, limit + reservation - u.used)
        await sleep(5)
      }
    })()
    const agent = new http.Agent({ keepAlive: true, maxSockets: 50 })
    const results = await Promise.all(
      Array.from({ length: 50 }, () => send(server.url, { path: '/v1/chat/completions', body, agent })),
    )
    agent.destroy()
    await sleep(50)
    sampling = false
    await sampler

    const admitted = results.filter((r) => r.status === 200)
    const refused = results.filter((r) => r.status === 429)
    expect(admitted.length + refused.length).toBe(50)
    expect(admitted.length).toBeGreaterThanOrEqual(10) // ten reservations fit
    expect(refused.length).toBeGreaterThan(0)
    for (const r of admitted) expect(r.body).toContain('"usage"')
    for (const r of refused) {
      expect(JSON.parse(r.body)).toMatchObject({
        error: { type: 'insufficient_quota', code: 'insufficient_quota' },
      })
      expect(Number(r.headers['ratelimit-remaining'])).toBeGreaterThanOrEqual(0)
    }
    expect(events).toHaveLength(refused.length)
    const final = await limiter.usage('openai')
    expect(final?.used).toBe(admitted.length * actual) // every stream settled to what it used
    expect(final!.used).toBeLessThanOrEqual(limit + reservation)
    expect(samples.length).toBeGreaterThan(0)
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(0) // remaining ≥ 0 and used ≤ limit + one reservation, throughout
  })
})
