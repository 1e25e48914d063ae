import { randomBytes } from 'node:crypto'
import express, { type RequestHandler } from 'express'
import { rateLimit as expressRateLimit } from 'express-rate-limit'
import request from 'supertest'
import { gatehouseLocals } from '@gatehouse/core'
import { collectEvents, createTestApp, recordingLogger, sleep } from '@gatehouse/testing'
import { memoryStore, rateLimit, TokenBucketStore, type RateLimitOptions } from '@gatehouse/rate-limit'

/** A test app that trusts X-Forwarded-For from loopback only, so a test can speak for any client address. */
function appWith(...mws: RequestHandler[]): express.Express {
  const app = createTestApp(...mws)
  app.set('trust proxy', 'loopback')
  return app
}

/** Sets what client-auth and routing would have recorded, from test headers. */
const pretendAuth: RequestHandler = (req, res, next) => {
  const locals = gatehouseLocals(res)
  const key = req.header('x-test-key-id')
  if (key) locals.clientKeyId = key
  const provider = req.header('x-test-provider')
  if (provider) locals.provider = provider
  locals.requestId = 'req-1'
  next()
}

const PATHS: [string, string, (body: unknown) => void][] = [
  [
    'claude',
    '/v1/messages',
    (b) => {
      expect(b).toEqual({
        type: 'error',
        error: { type: 'rate_limit_error', message: expect.stringMatching(/^Rate limit exceeded/) },
      })
    },
  ],
  [
    'openai',
    '/v1/chat/completions',
    (b) => {
      expect(b).toEqual({
        error: {
          message: expect.stringMatching(/^Rate limit exceeded/),
          type: 'requests',
          param: null,
          code: 'rate_limit_exceeded',
        },
      })
    },
  ],
  [
    'gemini',
    '/v1beta/models/gemini-2.0-flash:generateContent',
    (b) => {
      expect(b).toEqual({
        error: {
          code: 429,
          message: expect.stringMatching(/^Rate limit exceeded/),
          status: 'RESOURCE_EXHAUSTED',
        },
      })
    },
  ],
]

describe('rateLimit refusals', () => {
  it.each(PATHS)(
    'answers 429 in the %s shape with Retry-After, RateLimit-* headers and an event',
    async (provider, path, checkBody) => {
      const { events, onEvent } = collectEvents()
      const limiter = rateLimit({ scope: 'ip', requestsPerMinute: 2, onEvent })
      const app = appWith(pretendAuth, limiter)
      const secretKey = `sk-ant-${randomBytes(16).toString('hex')}`
      for (let i = 0; i < 2; i++) {
        const ok = await request(app)
          .post(path)
          .set('x-forwarded-for', '203.0.113.7')
          .set('x-api-key', secretKey)
          .set('x-test-key-id', 'key_0a1b2c3d')
          .send({})
        expect(ok.status).toBe(200)
        expect(ok.headers['ratelimit-remaining']).toBe(String(1 - i))
      }
      const res = await request(app)
        .post(path)
        .set('x-forwarded-for', '203.0.113.7')
        .set('x-api-key', secretKey)
        .set('x-test-key-id', 'key_0a1b2c3d')
        .send({})
      expect(res.status).toBe(429)
      checkBody(res.body)
      expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1)
      expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(30) // one token comes back every 30 s
      expect(res.headers['ratelimit-limit']).toBe('2')
      expect(res.headers['ratelimit-remaining']).toBe('0')
      expect(res.headers['ratelimit-policy']).toBe('2;w=60')
      expect(Number(res.headers['ratelimit-reset'])).toBe(Number(res.headers['retry-after']))
      expect(res.headers['cache-control']).toBe('no-store')
      expect(res.text).not.toContain(secretKey)
      expect(res.text).not.toContain('203.0.113.7')
      expect(events).toEqual([
        {
          timestamp: expect.any(String),
          event_type: 'security_violation',
          provider,
          user_id: 'key_0a1b2c3d',
          ip: '203.0.113.7',
          request_id: 'req-1',
          result: 'rate_limited',
          details: {
            code: 'GH_RL_RATE_LIMITED',
            scope: 'ip',
            limiter: 'ip',
            limit_type: 'requests',
            limit: 2,
            retry_after_seconds: Number(res.headers['retry-after']),
            // the caller's own per-address bucket: it may count towards blocking it
            own_limit: true,
          },
        },
      ])
      expect(JSON.stringify(events)).not.toContain(secretKey)
      expect(limiter.stats()).toEqual({ limited: 1, storeErrors: 0, failedOpen: 0, failedClosed: 0 })
    },
  )

  it('answers exactly as the README shows for 10 per second, burst 20', async () => {
    const frozen = Date.now()
    const app = appWith(
      rateLimit({
        scope: 'ip',
        requestsPerSecond: 10,
        burst: 20,
        store: memoryStore({ clock: () => frozen }),
      }),
    )
    for (let i = 0; i < 20; i++) await request(app).post('/v1/messages').send({}).expect(200)
    const res = await request(app).post('/v1/messages').send({})
    expect(res.status).toBe(429)
    expect(res.headers).toMatchObject({
      'retry-after': '1',
      'ratelimit-policy': '20;w=2',
      'ratelimit-limit': '20',
      'ratelimit-remaining': '0',
      'ratelimit-reset': '1',
      'cache-control': 'no-store',
    })
    expect(res.text).toBe(
      '{"type":"error","error":{"type":"rate_limit_error","message":"Rate limit exceeded for this client address: 10 per second, burst 20. Retry after 1 second."}}',
    )
  })
})

describe('rateLimit scopes', () => {
  it('keeps one bucket per client address, IPv4-mapped IPv6 keyed as IPv4', async () => {
    const app = appWith(rateLimit({ requestsPerMinute: 1 }))
    await request(app).get('/').set('x-forwarded-for', '198.51.100.1').expect(200)
    await request(app).get('/').set('x-forwarded-for', '::ffff:198.51.100.1').expect(429)
    await request(app).get('/').set('x-forwarded-for', '198.51.100.2').expect(200)
  })

  it('groups IPv6 clients by /56 by default, and by the configured subnet', async () => {
    const app = appWith(rateLimit({ requestsPerMinute: 1 }))
    await request(app).get('/').set('x-forwarded-for', '2001:db8:0:100::1').expect(200)
    await request(app).get('/').set('x-forwarded-for', '2001:db8:0:1ff:ffff::9').expect(429) // same /56
    await request(app).get('/').set('x-forwarded-for', '2001:db8:0:200::1').expect(200) // next /56

    const per64 = appWith(rateLimit({ requestsPerMinute: 1, ipv6Subnet: 64 }))
    await request(per64).get('/').set('x-forwarded-for', '2001:db8:0:100::1').expect(200)
    await request(per64).get('/').set('x-forwarded-for', '2001:db8:0:101::1').expect(200)
    await request(per64).get('/').set('x-forwarded-for', '2001:db8:0:100::2').expect(429)
  })

  it('limits the whole gateway with scope global', async () => {
    const { events, onEvent } = collectEvents()
    const frozen = Date.now()
    const app = appWith(
      rateLimit({
        scope: 'global',
        requestsPerSecond: 0.5,
        burst: 2,
        onEvent,
        store: memoryStore({ clock: () => frozen }),
      }),
    )
    await request(app).get('/').set('x-forwarded-for', '192.0.2.1').expect(200)
    await request(app).get('/').set('x-forwarded-for', '192.0.2.2').expect(200)
    const res = await request(app).get('/v1/models').set('x-forwarded-for', '192.0.2.3')
    expect(res.status).toBe(429)
    expect(res.body.error.message).toMatch(
      /for the gateway: 30 per minute, burst 2\. Retry after 2 seconds\./,
    )
    expect(events[0]).toMatchObject({
      result: 'rate_limited',
      ip: '192.0.2.3',
      details: { scope: 'global', limit: 2 },
    })
  })

  it('limits each client key with scope key, and falls back to the address without one', async () => {
    const { events, onEvent } = collectEvents()
    const app = appWith(pretendAuth, rateLimit({ scope: 'key', requestsPerMinute: 1, onEvent }))
    await request(app).get('/v1/models').set('x-test-key-id', 'key_aaaaaaaa').expect(200)
    const limited = await request(app).get('/v1/models').set('x-test-key-id', 'key_aaaaaaaa')
    expect(limited.status).toBe(429)
    expect(limited.body.error.message).toMatch(/for this API key/)
    await request(app).get('/v1/models').set('x-test-key-id', 'key_bbbbbbbb').expect(200)
    // No key: keyed by address, separately from the key buckets.
    await request(app).get('/v1/models').set('x-forwarded-for', '192.0.2.9').expect(200)
    await request(app).get('/v1/models').set('x-forwarded-for', '192.0.2.9').expect(429)
    expect(events.map((e) => [e.user_id, e.details?.scope])).toEqual([
      ['key_aaaaaaaa', 'key'],
      [undefined, 'key'],
    ])
  })

  it('limits each provider with its own rate, by path or by what routing recorded', async () => {
    const { events, onEvent } = collectEvents()
    const limiter = rateLimit({
      scope: 'provider',
      providers: { claude: { requestsPerMinute: 1 }, openai: { requestsPerMinute: 2 } },
      onEvent,
    })
    const app = appWith(pretendAuth, limiter)
    await request(app).post('/v1/messages').send({}).expect(200)
    const claude = await request(app).post('/claude/v1/messages').send({})
    expect(claude.status).toBe(429)
    expect(claude.body.error.type).toBe('rate_limit_error')
    expect(claude.body.error.message).toMatch(/for provider claude: 1 per minute, burst 1/)
    await request(app).post('/v1/chat/completions').send({}).expect(200)
    await request(app).post('/v1/chat/completions').send({}).expect(200)
    await request(app).post('/v1/chat/completions').send({}).expect(429)
    // Gemini has no rate and there is no top-level one: not limited.
    for (let i = 0; i < 3; i++)
      await request(app).post('/v1beta/models/m:generateContent').send({}).expect(200)
    // Paths that are no provider's are not limited by a provider scope.
    for (let i = 0; i < 3; i++) await request(app).get('/healthz').expect(200)
    // The provider an earlier layer recorded wins over the path.
    const recorded = await request(app).post('/custom/route').set('x-test-provider', 'openai').send({})
    expect(recorded.status).toBe(429)
    expect(recorded.body.error.code).toBe('rate_limit_exceeded')
    expect(events.map((e) => e.provider)).toEqual(['claude', 'openai', 'openai'])
  })

  it('gives providers without their own rate the top-level rate, each in its own bucket', async () => {
    const app = appWith(
      rateLimit({ scope: 'provider', requestsPerMinute: 1, providers: { claude: { requestsPerMinute: 2 } } }),
    )
    await request(app).post('/v1/messages').send({}).expect(200)
    await request(app).post('/v1/messages').send({}).expect(200)
    await request(app).post('/v1/messages').send({}).expect(429)
    await request(app).post('/v1/chat/completions').send({}).expect(200)
    await request(app).post('/v1/chat/completions').send({}).expect(429)
    await request(app).post('/v1beta/models/m:generateContent').send({}).expect(200)
  })
})

describe('rateLimit buckets and headers', () => {
  it('refills the bucket at the configured rate', async () => {
    let now = 1_700_000_000_000
    const store = memoryStore({ clock: () => now })
    const app = appWith(rateLimit({ requestsPerSecond: 2, burst: 2, store }))
    await request(app).get('/').expect(200)
    await request(app).get('/').expect(200)
    await request(app).get('/').expect(429)
    now += 499
    await request(app).get('/').expect(429)
    now += 1
    await request(app).get('/').expect(200)
    now += 10_000 // capped at the burst
    await request(app).get('/').expect(200)
    await request(app).get('/').expect(200)
    await request(app).get('/').expect(429)
  })

  it.each<[RateLimitOptions['standardHeaders'], Record<string, RegExp | undefined>]>([
    [
      'draft-7',
      {
        ratelimit: /^limit=1, remaining=0, reset=\d+$/,
        'ratelimit-policy': /^1;w=60$/,
        'ratelimit-limit': undefined,
      },
    ],
    [
      'draft-8',
      { ratelimit: /^"ip"; r=0; t=\d+$/, 'ratelimit-policy': /^"ip"; q=1; w=60; pk=:[A-Za-z0-9+/=]+:$/ },
    ],
  ])('sends %s headers when asked', async (standardHeaders, expected) => {
    const app = appWith(rateLimit({ requestsPerMinute: 1, standardHeaders }))
    await request(app).get('/').expect(200)
    const res = await request(app).get('/')
    expect(res.status).toBe(429)
    for (const [name, pattern] of Object.entries(expected)) {
      if (pattern === undefined) expect(res.headers[name]).toBeUndefined()
      else expect(res.headers[name]).toMatch(pattern)
    }
    expect(res.headers['retry-after']).toMatch(/^\d+$/)
  })

  it('sends X-RateLimit-* headers with legacyHeaders', async () => {
    const res = await request(appWith(rateLimit({ requestsPerMinute: 5, legacyHeaders: true }))).get('/')
    expect(res.headers['x-ratelimit-limit']).toBe('5')
    expect(res.headers['x-ratelimit-remaining']).toBe('4')
    expect(res.headers['ratelimit-limit']).toBe('5')
  })

  it('records its decision in res.locals.gatehouse.rateLimit', async () => {
    const res = await request(
      appWith(rateLimit({ requestsPerMinute: 5, scope: 'global', name: 'edge' })),
    ).get('/')
    expect(res.body.locals.rateLimit).toEqual({
      'requests:edge': { kind: 'requests', scope: 'global', limit: 5, remaining: 4 },
    })
  })

  it('keeps limiters with different names apart on one store', async () => {
    const store = memoryStore()
    const app = appWith(
      rateLimit({ requestsPerMinute: 1, store, name: 'a' }),
      rateLimit({ requestsPerMinute: 1, store, name: 'b' }),
    )
    await request(app).get('/').expect(200)
    await request(app).get('/').expect(429)
    expect(store.size('req:a')).toBe(1)
    expect(store.size('req:b')).toBe(1)
  })
})

describe('rateLimit logging and trust proxy', () => {
  it('logs nothing at warn or error on ordinary traffic (no express-rate-limit validation warnings)', async () => {
    const logger = recordingLogger()
    const store = memoryStore()
    const app = appWith(
      pretendAuth,
      rateLimit({ requestsPerMinute: 100, logger, store }),
      rateLimit({ scope: 'key', requestsPerMinute: 100, logger, store }),
      rateLimit({
        scope: 'provider',
        requestsPerMinute: 1,
        providers: { openai: { requestsPerMinute: 1 } },
        logger,
        store,
      }),
    )
    for (const path of ['/v1/messages', '/v1/chat/completions', '/v1beta/models/m:generateContent']) {
      await request(app)
        .post(path)
        .set('x-forwarded-for', '2001:db8::7')
        .set('x-test-key-id', 'key_0000aaaa')
        .send({})
        .expect(200)
      await request(app)
        .post(path)
        .set('x-forwarded-for', '2001:db8::7')
        .set('x-test-key-id', 'key_0000aaaa')
        .send({})
        .expect(429)
    }
    expect(logger.calls.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([])
  })

  it("warns once when 'trust proxy' is true, since clients could pick their own address", async () => {
    const logger = recordingLogger()
    const app = createTestApp(rateLimit({ requestsPerMinute: 5, logger }))
    app.set('trust proxy', true)
    await request(app).get('/').set('x-forwarded-for', '192.0.2.44').expect(200)
    await request(app).get('/').set('x-forwarded-for', '192.0.2.45').expect(200)
    expect(logger.calls).toEqual([
      {
        level: 'warn',
        message: expect.stringMatching(/'trust proxy' is true/),
        meta: { code: 'GH_RL_PERMISSIVE_TRUST_PROXY' },
      },
    ])
  })

  it("warns once when X-Forwarded-For arrives while 'trust proxy' is off", async () => {
    const logger = recordingLogger()
    const app = createTestApp(rateLimit({ requestsPerMinute: 5, logger }))
    await request(app).get('/').set('x-forwarded-for', '192.0.2.44').expect(200)
    await request(app).get('/').set('x-forwarded-for', '192.0.2.44').expect(200)
    expect(logger.calls).toEqual([
      {
        level: 'warn',
        message: expect.stringMatching(/X-Forwarded-For but Express 'trust proxy' is off/),
        meta: { code: 'GH_RL_UNEXPECTED_X_FORWARDED_FOR' },
      },
    ])
  })

  it('does not call next twice or touch the response after a refusal', async () => {
    const after = jest.fn<void, []>()
    const app = appWith(rateLimit({ requestsPerMinute: 1 }), (_req, _res, next) => {
      after()
      next()
    })
    await request(app).get('/').expect(200)
    await request(app).get('/').expect(429)
    expect(after).toHaveBeenCalledTimes(1)
  })
})

describe('TokenBucketStore with express-rate-limit directly', () => {
  it('turns limit and windowMs into a smooth token bucket and keeps every header working', async () => {
    let now = 1_700_000_000_000
    const store = memoryStore({ clock: () => now })
    const app = express()
    app.use(
      expressRateLimit({
        windowMs: 60_000,
        limit: 3,
        standardHeaders: 'draft-6',
        legacyHeaders: true,
        store: new TokenBucketStore({ store, namespace: 'api' }),
      }),
    )
    app.get('/', (_req, res) => void res.send('ok'))
    for (let i = 0; i < 3; i++) {
      const res = await request(app).get('/')
      expect(res.status).toBe(200)
      expect(res.headers['ratelimit-remaining']).toBe(String(2 - i))
      expect(res.headers['x-ratelimit-limit']).toBe('3')
    }
    const refused = await request(app).get('/')
    expect(refused.status).toBe(429)
    expect(refused.headers['retry-after']).toBe('20') // one token per 20 s
    now += 20_000
    await request(app).get('/').expect(200)
  })

  it('gives the token back for requests express-rate-limit skips (skipFailedRequests)', async () => {
    const store = memoryStore()
    const app = express()
    app.use(
      expressRateLimit({
        windowMs: 60_000,
        limit: 1,
        skipFailedRequests: true,
        store: new TokenBucketStore({ store }),
      }),
    )
    app.get('/fail', (_req, res) => void res.status(500).send('no'))
    app.get('/ok', (_req, res) => void res.send('ok'))
    for (let i = 0; i < 3; i++) await request(app).get('/fail').expect(500)
    await sleep(20)
    await request(app).get('/ok').expect(200)
    await request(app).get('/ok').expect(429)
  })

  it('answers getKey and resetKey', async () => {
    const limiter = expressRateLimit({ windowMs: 60_000, limit: 2, store: new TokenBucketStore() })
    const app = express()
      .use(limiter)
      .get('/', (_req, res) => void res.send('ok'))
    await request(app).get('/').expect(200)
    const info = await limiter.getKey('::ffff:127.0.0.1')
    const key = info ? '::ffff:127.0.0.1' : '127.0.0.1'
    expect(await limiter.getKey(key)).toMatchObject({ totalHits: 1, resetTime: expect.any(Date) })
    await limiter.resetKey(key)
    expect(await limiter.getKey(key)).toBeUndefined()
  })
})
