import type { RequestHandler } from 'express'
import request from 'supertest'
import { gatehouseLocals, type SecurityEventHandler } from '@gatehouse/core'
import { collectEvents, createTestApp, recordingLogger, sleep } from '@gatehouse/testing'
import {
  memoryStore,
  quota,
  rateLimit,
  StoreUnavailableError,
  tokenLimit,
  type RateLimitHandler,
  type RateLimitStore,
} from '@gatehouse/rate-limit'

/** A real memory store whose named operations fail with `error`. */
function failing(
  methods: (keyof RateLimitStore)[],
  error: () => Error,
): RateLimitStore & { inner: RateLimitStore } {
  const inner = memoryStore()
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'inner') return inner
      const value: unknown = Reflect.get(target, prop, receiver)
      if (typeof value !== 'function') return value
      if ((methods as (string | symbol)[]).includes(prop)) return () => Promise.reject(error())
      return (value as (...a: unknown[]) => unknown).bind(target)
    },
  }) as unknown as RateLimitStore & { inner: RateLimitStore }
}

const reportUsage: RequestHandler = (_req, res, next) => {
  gatehouseLocals(res).usage = { inputTokens: 1, outputTokens: 1 }
  next()
}

describe('store failures after admission', () => {
  it('keeps a token reservation charged when its settlement fails, and logs and counts it', async () => {
    const store = failing(['adjust'], () => new StoreUnavailableError('Redis did not answer in time'))
    const logger = recordingLogger()
    const limiter = tokenLimit({
      scope: 'global',
      tokensPerMinute: 1000,
      defaultMaxTokens: 99,
      store,
      logger,
    })
    await request(createTestApp(limiter, reportUsage)).post('/v1/messages').send('{}').expect(200)
    await sleep(20)
    expect(limiter.stats()).toEqual({ limited: 0, storeErrors: 1, failedOpen: 0, failedClosed: 0 })
    expect(logger.calls).toEqual([
      {
        level: 'error',
        message:
          '@gatehouse/rate-limit: store unavailable; a reservation could not be settled and stays charged',
        meta: expect.objectContaining({ code: 'GH_RL_STORE_UNAVAILABLE', limiter: 'global', suppressed: 0 }),
      },
    ])
    const state = await store.peek({
      namespace: 'tok:global',
      key: 'global',
      capacity: 1000,
      refillPerSecond: 1000 / 60,
    })
    expect(state.tokens).toBeLessThan(1000 - 99)
  })

  it('keeps a quota reservation charged when its settlement fails', async () => {
    const store = failing(['quotaSettle'], () => new StoreUnavailableError('Redis did not answer in time'))
    const limiter = quota({ scope: 'global', limit: 1000, defaultMaxTokens: 99, store })
    await request(createTestApp(limiter, reportUsage)).post('/v1/messages').send('{}').expect(200)
    await sleep(20)
    expect(limiter.stats().storeErrors).toBe(1)
    expect(await limiter.usage('global')).toMatchObject({ used: 100 })
  })
})

describe('errors that are not store outages', () => {
  it.each<
    [
      string,
      (store: RateLimitStore, onEvent: SecurityEventHandler) => RateLimitHandler,
      (keyof RateLimitStore)[],
    ]
  >([
    ['rateLimit', (store, onEvent) => rateLimit({ requestsPerMinute: 5, store, onEvent }), ['take']],
    [
      'tokenLimit',
      (store, onEvent) => tokenLimit({ scope: 'global', tokensPerMinute: 5000, store, onEvent }),
      ['take'],
    ],
    ['quota', (store, onEvent) => quota({ scope: 'global', limit: 5000, store, onEvent }), ['quotaReserve']],
  ])(
    '%s passes them to next(err) and neither serves nor counts a store error',
    async (_name, make, methods) => {
      const store = failing(methods, () => new Error('a bug in a custom store'))
      const { events, onEvent } = collectEvents()
      const limiter = make(store, onEvent)
      const res = await request(createTestApp(limiter)).post('/v1/messages').send('{}')
      expect(res.status).toBe(500)
      expect(res.body).toEqual({ code: 'INTERNAL', message: 'a bug in a custom store' })
      expect(limiter.stats()).toEqual({ limited: 0, storeErrors: 0, failedOpen: 0, failedClosed: 0 })
      expect(events).toEqual([])
    },
  )
})

describe('store error logging', () => {
  it('logs one line per 5 s with a count of the lines it held back', async () => {
    const store = failing(['take'], () => new StoreUnavailableError('Redis connection is reconnecting'))
    const logger = recordingLogger()
    const limiter = rateLimit({ requestsPerMinute: 5, store, logger })
    const app = createTestApp(limiter)
    for (let i = 0; i < 4; i++) await request(app).get('/').expect(200)
    expect(logger.calls).toHaveLength(1)
    jest.useFakeTimers({
      now: Date.now() + 6000,
      doNotFake: [
        'nextTick',
        'setImmediate',
        'setTimeout',
        'setInterval',
        'clearTimeout',
        'clearInterval',
        'queueMicrotask',
      ],
    })
    try {
      await request(app).get('/').expect(200)
    } finally {
      jest.useRealTimers()
    }
    expect(logger.calls).toHaveLength(2)
    expect(logger.calls[1]!.meta).toMatchObject({
      suppressed: 3,
      error: '@gatehouse/rate-limit: Redis connection is reconnecting',
    })
    expect(limiter.stats()).toEqual({ limited: 0, storeErrors: 5, failedOpen: 5, failedClosed: 0 })
  })
})

describe('token and quota refusals in other header drafts', () => {
  it.each<['draft-7' | 'draft-8', Record<string, RegExp>]>([
    ['draft-7', { ratelimit: /^limit=100, remaining=\d+, reset=\d+$/, 'ratelimit-policy': /^100;w=60$/ }],
    [
      'draft-8',
      {
        ratelimit: /^"tpm"; r=\d+; t=\d+$/,
        'ratelimit-policy': /^"tpm"; q=100; w=60; pk=:[A-Za-z0-9+/=]+:$/,
      },
    ],
  ])('tokenLimit sends %s headers', async (standardHeaders, expected) => {
    const app = createTestApp(
      tokenLimit({
        scope: 'global',
        tokensPerMinute: 100,
        defaultMaxTokens: 60,
        standardHeaders,
        name: 'tpm',
      }),
    )
    await request(app).post('/v1/messages').send('{}').expect(200)
    const res = await request(app).post('/v1/messages').send('{}')
    expect(res.status).toBe(429)
    for (const [name, pattern] of Object.entries(expected)) expect(res.headers[name]).toMatch(pattern)
    expect(res.headers['ratelimit-limit']).toBeUndefined()
  })

  it('quota sends draft-8 headers', async () => {
    const app = createTestApp(
      quota({ scope: 'global', limit: 10, defaultMaxTokens: 60, standardHeaders: 'draft-8', name: 'month' }),
    )
    const res = await request(app).post('/v1/messages').send('{}')
    expect(res.status).toBe(429)
    expect(res.headers.ratelimit).toMatch(/^"month"; r=10; t=\d+$/)
  })
})

describe('limits that do not apply', () => {
  it('tokenLimit passes providers it has no rate for', async () => {
    const limiter = tokenLimit({
      scope: 'provider',
      providers: { claude: { tokensPerMinute: 10 } },
      defaultMaxTokens: 100,
    })
    const app = createTestApp(limiter)
    for (let i = 0; i < 3; i++) await request(app).post('/v1/chat/completions').send('{}').expect(200)
    await request(app).post('/healthz').send('{}').expect(200)
    await request(app).post('/v1/messages').send('{}').expect(200)
    await request(app).post('/v1/messages').send('{}').expect(429)
  })

  it('quota passes providers it has no limit for and answers usage() with undefined for them', async () => {
    const limiter = quota({ scope: 'provider', providers: { claude: { limit: 10 } } })
    const app = createTestApp(limiter)
    await request(app).post('/v1/chat/completions').send('{}').expect(200)
    expect(await limiter.usage('openai')).toBeUndefined()
  })

  it('shutdown() closes a store the limiter made and leaves a given one alone', async () => {
    const given = memoryStore({ quotaFile: undefined })
    const spy = jest.spyOn(given, 'shutdown')
    await rateLimit({ requestsPerSecond: 1, store: given }).shutdown()
    expect(spy).not.toHaveBeenCalled()
    const own = rateLimit({ requestsPerSecond: 1 })
    const ownSpy = jest.spyOn(own.store, 'shutdown')
    await own.shutdown()
    expect(ownSpy).toHaveBeenCalledTimes(1)
  })
})
