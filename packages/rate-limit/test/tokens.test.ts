import http from 'node:http'
import express, { type RequestHandler } from 'express'
import request from 'supertest'
import { gatehouseLocals } from '@gatehouse/core'
import { collectEvents, createTestApp, listen, MockUpstream, type RunningServer, sleep } from '@gatehouse/testing'
import { estimateTokens, memoryStore, quota, tokenLimit } from '@gatehouse/rate-limit'
import { proxyTo } from './proxy'
import { send } from './helpers'

/** Echo what estimateTokens sees. */
const echoEstimate =
  (defaultMax: number): RequestHandler =>
  (req, res) =>
    void res.json(estimateTokens(req, defaultMax))

describe('estimateTokens', () => {
  const parsed = express().use(express.json()).use(echoEstimate(100))
  const raw = express().use(echoEstimate(100))

  it.each<[string, Record<string, unknown>, number]>([
    ['max_tokens', { model: 'm', max_tokens: 50, messages: [] }, 50],
    ['max_completion_tokens', { model: 'm', max_completion_tokens: 70 }, 70],
    ['max_output_tokens', { model: 'm', max_output_tokens: 90 }, 90],
    ['generationConfig.maxOutputTokens', { generationConfig: { maxOutputTokens: 30 } }, 30],
    ['no cap: the default', { model: 'm' }, 100],
    ['a bad cap: the default', { model: 'm', max_tokens: 'lots' }, 100],
    ['an absurd cap: bounded', { model: 'm', max_tokens: 1e300 }, 1e12],
  ])('reads %s from a parsed body', async (_name, body, maxOutput) => {
    const text = JSON.stringify(body)
    const res = await request(parsed)
      .post('/v1/chat/completions')
      .set('content-type', 'application/json')
      .send(text)
    expect(res.body).toEqual({
      promptTokens: Math.ceil(Buffer.byteLength(text) / 4),
      maxOutputTokens: maxOutput,
      total: Math.min(Math.ceil(Buffer.byteLength(text) / 4) + maxOutput, 1e12),
    })
  })

  it('uses Content-Length / 4 plus the default when no body parser ran', async () => {
    const text = JSON.stringify({
      model: 'm',
      max_tokens: 5,
      messages: [{ role: 'user', content: 'x'.repeat(397) }],
    })
    const res = await request(raw).post('/v1/messages').set('content-type', 'application/json').send(text)
    expect(res.body).toEqual({
      promptTokens: Math.ceil(text.length / 4),
      maxOutputTokens: 100,
      total: Math.ceil(text.length / 4) + 100,
    })
  })

  it('reserves no output for embeddings and nothing for requests without a body', async () => {
    const text = JSON.stringify({ model: 'e', input: 'abcdefgh' })
    const emb = await request(raw).post('/v1/embeddings').set('content-type', 'application/json').send(text)
    expect(emb.body).toEqual({
      promptTokens: Math.ceil(text.length / 4),
      maxOutputTokens: 0,
      total: Math.ceil(text.length / 4),
    })
    const get = await request(raw).get('/v1/models')
    expect(get.body).toEqual({ promptTokens: 0, maxOutputTokens: 0, total: 0 })
  })

  it('re-serialises a parsed body when the length is unknown (chunked)', async () => {
    const app = express()
      .use(express.json())
      .use((req, _res, next) => {
        delete req.headers['content-length']
        next()
      })
      .use(echoEstimate(10))
    const body = { model: 'm', max_tokens: 7 }
    const res = await request(app).post('/v1/chat/completions').send(body)
    expect(res.body).toEqual({
      promptTokens: Math.ceil(JSON.stringify(body).length / 4),
      maxOutputTokens: 7,
      total: Math.ceil(JSON.stringify(body).length / 4) + 7,
    })
  })
})

/** The final handler reports usage the way the gateway's proxy would, before the response finishes. */
const reportUsage: RequestHandler = (req, res, next) => {
  const input = Number(req.header('x-test-input'))
  const output = Number(req.header('x-test-output'))
  if (Number.isFinite(input) && Number.isFinite(output))
    gatehouseLocals(res).usage = { inputTokens: input, outputTokens: output }
  next()
}

const PROVIDER_BODIES: [string, string, unknown][] = [
  [
    'openai',
    '/v1/chat/completions',
    {
      error: {
        message: expect.stringMatching(/^Token rate limit exceeded/),
        type: 'tokens',
        param: null,
        code: 'rate_limit_exceeded',
      },
    },
  ],
  [
    'claude',
    '/v1/messages',
    {
      type: 'error',
      error: { type: 'rate_limit_error', message: expect.stringMatching(/^Token rate limit exceeded/) },
    },
  ],
  [
    'gemini',
    '/v1beta/models/g:streamGenerateContent',
    {
      error: {
        code: 429,
        status: 'RESOURCE_EXHAUSTED',
        message: expect.stringMatching(/^Token rate limit exceeded/),
      },
    },
  ],
]

/** The tokenLimit tests' request: a 117-byte body, 30 prompt tokens, 100 output tokens by default. */
const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'y'.repeat(60) }] })
const prompt = Math.ceil(Buffer.byteLength(body) / 4) // 117 bytes → 30 tokens
const estimate = prompt + 100

describe('tokenLimit', () => {

  it.each(PROVIDER_BODIES)(
    'refuses in the %s shape with headers and an event when the bucket lacks the reservation',
    async (provider, path, expected) => {
      const { events, onEvent } = collectEvents()
      const limiter = tokenLimit({
        scope: 'provider',
        providers: { [provider]: { tokensPerMinute: estimate * 2 } },
        defaultMaxTokens: 100,
        onEvent,
      })
      const app = createTestApp(limiter)
      for (let i = 0; i < 2; i++)
        await request(app).post(path).set('content-type', 'application/json').send(body).expect(200)
      const res = await request(app).post(path).set('content-type', 'application/json').send(body)
      expect(res.status).toBe(429)
      expect(res.body).toEqual(expected)
      expect(res.body).not.toHaveProperty('locals')
      expect(res.headers['ratelimit-limit']).toBe(String(estimate * 2))
      expect(res.headers['ratelimit-remaining']).toBe('0')
      expect(res.headers['ratelimit-policy']).toBe(`${estimate * 2};w=60`)
      // One reservation of `estimate` tokens refills in estimate / (2 * estimate / 60) = 30 s.
      expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(29)
      expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(30)
      expect(res.headers['ratelimit-reset']).toBe(res.headers['retry-after'])
      expect(res.headers['cache-control']).toBe('no-store')
      expect(events).toEqual([
        expect.objectContaining({
          event_type: 'security_violation',
          provider,
          result: 'rate_limited',
          details: {
            code: 'GH_RL_TOKEN_LIMITED',
            scope: 'provider',
            limiter: 'provider',
            limit_type: 'tokens',
            limit: estimate * 2,
            retry_after_seconds: Number(res.headers['retry-after']),
            // a provider's bucket is shared: it never counts towards blocking the caller
            own_limit: false,
          },
        }),
      ])
      expect(limiter.stats().limited).toBe(1)
    },
  )
})

describe('tokenLimit settlement', () => {
  it('settles the reservation against reported usage: unused tokens come back', async () => {
    const frozen = Date.now()
    const store = memoryStore({ clock: () => frozen })
    const app = createTestApp(
      tokenLimit({ scope: 'global', tokensPerMinute: 1000, defaultMaxTokens: 400, store }),
      reportUsage,
    )
    const bucket = { namespace: 'tok:global', key: 'global', capacity: 1000, refillPerSecond: 1000 / 60 }
    const res = await request(app)
      .post('/v1/chat/completions')
      .set('content-type', 'application/json')
      .set('x-test-input', '20')
      .set('x-test-output', '30')
      .send(body)
    expect(res.status).toBe(200)
    expect(res.body.locals.rateLimit['tokens:global']).toEqual({
      kind: 'tokens',
      scope: 'global',
      limit: 1000,
      remaining: 1000 - (prompt + 400),
      reserved: prompt + 400,
    })
    await sleep(20)
    const after = await store.peek(bucket)
    // prompt + 400 reserved, 50 used: 950 left.
    expect(after.tokens).toBe(950)
  })

  it('keeps the whole reservation when the response ends without usage', async () => {
    const frozen = Date.now()
    const store = memoryStore({ clock: () => frozen })
    const app = createTestApp(
      tokenLimit({ scope: 'global', tokensPerMinute: 1000, defaultMaxTokens: 400, store }),
    )
    await request(app)
      .post('/v1/chat/completions')
      .set('content-type', 'application/json')
      .send(body)
      .expect(200)
    await sleep(20)
    const after = await store.peek({
      namespace: 'tok:global',
      key: 'global',
      capacity: 1000,
      refillPerSecond: 1000 / 60,
    })
    expect(after.tokens).toBe(1000 - prompt - 400)
  })

  it('charges usage over the reservation, so the bucket can go into debt and refuses until it refills', async () => {
    let now = 1_700_000_000_000
    const store = memoryStore({ clock: () => now })
    const app = createTestApp(
      tokenLimit({ scope: 'global', tokensPerMinute: 600, defaultMaxTokens: 100, store }),
      reportUsage,
    )
    await request(app)
      .post('/v1/messages')
      .set('content-type', 'application/json')
      .set('x-test-input', '500')
      .set('x-test-output', '500')
      .send(body)
      .expect(200)
    await sleep(10)
    const state = await store.peek({
      namespace: 'tok:global',
      key: 'global',
      capacity: 600,
      refillPerSecond: 10,
    })
    expect(state.tokens).toBe(-400)
    const refused = await request(app).post('/v1/messages').set('content-type', 'application/json').send(body)
    expect(refused.status).toBe(429)
    // prompt + 100 tokens needed from -400 at 10 per second.
    const wait = Math.ceil((prompt + 100 + 400) / 10)
    expect(refused.headers['retry-after']).toBe(String(wait))
    expect(refused.headers['ratelimit-remaining']).toBe('0')
    now += wait * 1000
    await request(app).post('/v1/messages').set('content-type', 'application/json').send(body).expect(200)
  })
})

describe('tokenLimit reservations', () => {
  it('lets a request bigger than the bucket through when the bucket is full, reserving all of it', async () => {
    const app = createTestApp(tokenLimit({ scope: 'global', tokensPerMinute: 1000 }))
    const huge = JSON.stringify({ model: 'm', max_tokens: 1_000_000 })
    const parsedApp = express().use(express.json()).use(app)
    const res = await request(parsedApp)
      .post('/v1/chat/completions')
      .set('content-type', 'application/json')
      .send(huge)
    expect(res.status).toBe(200)
    expect(res.body.locals.rateLimit['tokens:global']).toMatchObject({ reserved: 1000, remaining: 0 })
    const next = await request(parsedApp)
      .post('/v1/chat/completions')
      .set('content-type', 'application/json')
      .send(huge)
    expect(next.status).toBe(429)
  })

  it('never reserves for requests without tokens (GET /v1/models) even when the bucket is empty', async () => {
    const app = createTestApp(tokenLimit({ scope: 'global', tokensPerMinute: 10, defaultMaxTokens: 10 }))
    await request(app)
      .post('/v1/chat/completions')
      .set('content-type', 'application/json')
      .send('{}')
      .expect(200)
    await request(app)
      .post('/v1/chat/completions')
      .set('content-type', 'application/json')
      .send('{}')
      .expect(429)
    await request(app).get('/v1/models').expect(200)
  })

  it('limits per key and per address with their own buckets', async () => {
    const auth: RequestHandler = (req, res, next) => {
      const id = req.header('x-test-key-id')
      if (id) gatehouseLocals(res).clientKeyId = id
      next()
    }
    const app = createTestApp(auth, tokenLimit({ scope: 'key', tokensPerMinute: 100, defaultMaxTokens: 90 }))
    await request(app).post('/v1/messages').set('x-test-key-id', 'key_11111111').send('{}').expect(200)
    const refused = await request(app).post('/v1/messages').set('x-test-key-id', 'key_11111111').send('{}')
    expect(refused.status).toBe(429)
    expect(refused.body.error.message).toMatch(
      /for this API key: 100 tokens per minute; this request needs up to 91\./,
    )
    await request(app).post('/v1/messages').set('x-test-key-id', 'key_22222222').send('{}').expect(200)
  })
})

describe('meterUpstreamUsage through a streaming proxy', () => {
  let upstream: MockUpstream
  let server: RunningServer | undefined

  beforeAll(async () => {
    upstream = await MockUpstream.start()
  })
  afterAll(async () => {
    await upstream.close()
  })
  afterEach(async () => {
    await server?.close()
    server = undefined
  })

  it.each<[string, string, Record<string, unknown>]>([
    [
      'openai',
      '/v1/chat/completions',
      {
        model: 'gpt-4o',
        stream: true,
        stream_options: { include_usage: true },
        messages: [{ role: 'user', content: 'hi' }],
      },
    ],
    [
      'claude',
      '/v1/messages',
      { model: 'claude-x', stream: true, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] },
    ],
    ['gemini', '/v1beta/models/g:streamGenerateContent?alt=sse', { contents: [{ parts: [{ text: 'hi' }] }] }],
  ])(
    'settles %s SSE streams with the usage the provider reported, passing chunks through as they come',
    async (_provider, path, payload) => {
      upstream.behave({ chunks: 4, chunkIntervalMs: 60 })
      const store = memoryStore()
      const limiter = tokenLimit({ scope: 'global', tokensPerMinute: 60_000, defaultMaxTokens: 1000, store })
      server = await listen(createTestApp(limiter, proxyTo(upstream)))
      const text = JSON.stringify(payload)
      const started = Date.now()
      let firstChunkAt = 0
      const done = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(
          `${server!.url}${path}`,
          {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
          },
          (res) => {
            let bodyText = ''
            res.on('data', (c: Buffer) => {
              if (!firstChunkAt) firstChunkAt = Date.now()
              bodyText += c.toString()
            })
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: bodyText }))
          },
        )
        req.on('error', reject)
        req.end(text)
      })
      const total = Date.now() - started
      expect(done.status).toBe(200)
      expect(done.body).toContain('data:')
      // The first chunk reached the client well before the stream ended: nothing was buffered.
      expect(firstChunkAt - started).toBeLessThan(total - 120)
      await sleep(30)
      // No body parser ran, so the reservation is Content-Length / 4 plus defaultMaxTokens.
      const reserved = Math.ceil(Buffer.byteLength(text) / 4) + 1000
      const state = await store.peek({
        namespace: 'tok:global',
        key: 'global',
        capacity: 60_000,
        refillPerSecond: 1000,
      })
      // Usage from the mock: input ceil(bytes / 4), output 5 per chunk. The bucket got the rest back.
      const used = Math.ceil(Buffer.byteLength(text) / 4) + 20
      expect(reserved).toBeGreaterThan(used)
      expect(state.tokens).toBeGreaterThan(60_000 - reserved) // settled, not left at the reservation
      expect(state.tokens).toBeLessThanOrEqual(60_000)
      expect(60_000 - state.tokens).toBeLessThanOrEqual(used)
    },
  )

  it('keeps the reservation of a stream the upstream dropped before reporting usage', async () => {
    upstream.behave({ chunks: 5, chunkIntervalMs: 10, dropAfterChunks: 1 })
    const frozen = Date.now()
    const store = memoryStore({ clock: () => frozen })
    const limiter = tokenLimit({ scope: 'global', tokensPerMinute: 600, defaultMaxTokens: 40, store })
    server = await listen(createTestApp(limiter, proxyTo(upstream)))
    const text = JSON.stringify({
      model: 'm',
      stream: true,
      stream_options: { include_usage: true },
      messages: [],
    })
    await send(server.url, { path: '/v1/chat/completions', body: text }).catch(() => undefined)
    await sleep(50)
    const state = await store.peek({
      namespace: 'tok:global',
      key: 'global',
      capacity: 600,
      refillPerSecond: 10,
    })
    const reserved = Math.ceil(text.length / 4) + 40
    // Still charged in full, not refunded.
    expect(state.tokens).toBe(600 - reserved)
    upstream.behave({})
  })
})

describe('reserving request-guard\'s estimate and settling on tokenCharge', () => {
  /** What request-guard leaves: the estimate from the validated body. */
  const guard: RequestHandler = (_req, res, next) => {
    gatehouseLocals(res).tokenEstimate = { promptTokens: 100, outputTokens: 400 }
    next()
  }
  /** What the proxy leaves, chosen by the test: x-reached, x-status, x-usage. */
  const upstreamOutcome: RequestHandler = (req, res) => {
    const locals = gatehouseLocals(res)
    if (req.headers['x-reached'] !== undefined) locals.upstreamReached = req.headers['x-reached'] === 'true'
    if (req.headers['x-status'] !== undefined) locals.upstreamStatus = Number(req.headers['x-status'])
    if (req.headers['x-usage'] !== undefined) locals.usage = { inputTokens: 10, outputTokens: Number(req.headers['x-usage']) }
    res.status(locals.upstreamStatus ?? (locals.upstreamReached === false ? 502 : 200)).json({ reserved: locals.rateLimit })
  }
  const bucket = { namespace: 'tok:global', key: 'global', capacity: 10_000, refillPerSecond: 10_000 / 60 }

  it.each<[string, Record<string, string>, number]>([
    ['reported usage', { 'x-reached': 'true', 'x-status': '200', 'x-usage': '40' }, 50],
    ['no usage from an upstream that got it (a stream cut short): the pessimistic bound', { 'x-reached': 'true', 'x-status': '200' }, 500],
    ['no usage and no answer from an upstream that got it (first-byte timeout): the bound', { 'x-reached': 'true' }, 500],
    ['a request the upstream never got: nothing', { 'x-reached': 'false' }, 0],
    ['an upstream error without usage: nothing (providers do not bill errors)', { 'x-reached': 'true', 'x-status': '400' }, 0],
  ])('tokenLimit and quota reserve prompt + output bound and charge %s', async (_what, headers, charged) => {
    const frozen = Date.now()
    const store = memoryStore({ clock: () => frozen })
    const app = createTestApp(
      guard,
      tokenLimit({ scope: 'global', tokensPerMinute: 10_000, defaultMaxTokens: 9999, store }),
      quota({ scope: 'global', limit: 1_000_000, defaultMaxTokens: 9999, store }),
      upstreamOutcome,
    )
    const res = await request(app).post('/v1/chat/completions').set(headers).send({ model: 'm' })
    // The reservation is the estimate, not Content-Length / 4 + the default.
    expect(res.body.reserved['tokens:global'].reserved).toBe(500)
    expect(res.body.reserved['quota:global'].reserved).toBe(500)
    await sleep(20)
    expect((await store.peek(bucket)).tokens).toBe(10_000 - charged)
    expect((await store.quotaGet({ namespace: 'quota:global', key: 'global', limit: 1_000_000 })).used).toBe(charged)
  })
})
