import http from 'node:http'
import express, { type RequestHandler } from 'express'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { MockUpstream, collectEvents, listen, type RunningServer } from '@gatehouse/testing'
import type { SecurityEvent } from '@gatehouse/core'
import { forwardBody, requestGuard, type RequestGuardOptions } from '@gatehouse/request-guard'
import { GEMINI_PATH, chat, claude, gemini, postJson, send } from './helpers'

interface Gateway {
  server: RunningServer
  events: SecurityEvent[]
}

/** The shape the reference server uses: guard, then http-proxy-middleware writing the guarded body. */
async function gateway(
  upstream: MockUpstream,
  options: RequestGuardOptions = {},
  before: RequestHandler[] = [],
  proxyReq: typeof forwardBody = forwardBody,
): Promise<Gateway> {
  const { events, onEvent } = collectEvents()
  const app = express()
  for (const mw of before) app.use(mw)
  app.use(requestGuard({ ...options, onEvent }))
  app.use(createProxyMiddleware({ target: upstream.url, changeOrigin: true, on: { proxyReq } }))
  return { server: await listen(app), events }
}

/** A mock upstream and the default gateway in front of it, for one describe block. */
function useGateway(): { upstream: MockUpstream; gw: Gateway } {
  const t = {} as { upstream: MockUpstream; gw: Gateway }
  beforeAll(async () => {
    t.upstream = await MockUpstream.start()
    t.gw = await gateway(t.upstream)
  })
  afterAll(async () => {
    await t.gw.server.close()
    await t.upstream.close()
  })
  beforeEach(() => {
    t.upstream.reset()
    t.gw.events.length = 0
  })
  return t
}

describe('requestGuard + forwardBody in front of http-proxy-middleware', () => {
  const t = useGateway()

  it.each<[string, string, string]>([
    [
      'OpenAI, odd whitespace and unicode',
      '/v1/chat/completions',
      '{\r\n\t"model" :"gpt-4o",  "messages":[ {"role":"user","content":"héllo 世界 🚀 \\u00e9\\ud83d\\ude80 \\/ \\"q\\""} ]\n,"max_tokens": 4096.0 }\n\n',
    ],
    [
      'Anthropic, escapes and astral characters',
      '/v1/messages',
      '{"model":"claude-sonnet-4-5","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text","text":"𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \\t \\\\ end"}]}]}',
    ],
    [
      'Gemini',
      GEMINI_PATH,
      `  ${JSON.stringify(gemini({ generationConfig: { maxOutputTokens: 10 } }), null, 3)}  `,
    ],
  ])('forwards the validated bytes unchanged: %s', async (_name, path, text) => {
    const sent = Buffer.from(text, 'utf8')
    const res = await send(t.gw.server.url, {
      path,
      headers: { 'content-type': 'application/json', 'content-length': sent.length },
      body: sent,
    })
    expect(res.status).toBe(200)
    expect(t.upstream.requests).toHaveLength(1)
    const got = t.upstream.last!
    expect(got.path).toBe(path.split('?')[0])
    expect(Buffer.compare(got.body, sent)).toBe(0)
    expect(got.headers['content-length']).toBe(String(sent.length))
    expect(got.headers['transfer-encoding']).toBeUndefined()
    expect(t.gw.events).toEqual([])
  })

  it('forwards a chunked upload as one body with a Content-Length', async () => {
    const text = JSON.stringify(claude({ messages: [{ role: 'user', content: 'ü'.repeat(5000) }] }))
    const sent = Buffer.from(text, 'utf8')
    // Split inside a two-byte character on purpose.
    const chunks = [sent.subarray(0, 1001), sent.subarray(1001, 4003), sent.subarray(4003)]
    const res = await send(t.gw.server.url, {
      path: '/v1/messages',
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      chunks,
      chunkDelayMs: 5,
    })
    expect(res.status).toBe(200)
    const got = t.upstream.last!
    expect(Buffer.compare(got.body, sent)).toBe(0)
    expect(got.headers['content-length']).toBe(String(sent.length))
    expect(got.headers['transfer-encoding']).toBeUndefined()
  })

  it('forwards a body sent with Expect: 100-continue', async () => {
    const sent = Buffer.from(JSON.stringify(chat()))
    const url = new URL('/v1/chat/completions', t.gw.server.url)
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          agent: false,
          headers: {
            'content-type': 'application/json',
            'content-length': sent.length,
            expect: '100-continue',
          },
        },
        (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode ?? 0))
        },
      )
      req.on('continue', () => req.end(sent))
      req.on('error', reject)
    })
    expect(status).toBe(200)
    expect(Buffer.compare(t.upstream.last!.body, sent)).toBe(0)
    expect(t.upstream.last!.headers.expect).toBeUndefined()
  })

  it('lets a GET through with no body', async () => {
    const res = await send(t.gw.server.url, { method: 'GET', path: '/v1/models' })
    expect(res.status).toBe(200)
    expect(res.json.object).toBe('list')
    expect(t.upstream.last!.body.length).toBe(0)
  })

  it.each<[string, string, string, Record<string, string>, number]>([
    ['max_tokens over the cap', '/v1/messages', JSON.stringify(claude({ max_tokens: 5000 })), {}, 400],
    ['a schema violation', '/v1/chat/completions', JSON.stringify({ model: 'x' }), {}, 400],
    ['malformed JSON', '/v1/chat/completions', '{"model":', {}, 400],
    ['a wrong content type', GEMINI_PATH, JSON.stringify(gemini()), { 'content-type': 'text/plain' }, 415],
    [
      'prototype pollution',
      '/v1/chat/completions',
      '{"model":"x","messages":[{"role":"user","content":"x"}],"__proto__":{}}',
      {},
      400,
    ],
    ['too deep', '/v1/embeddings', `{"model":"x","input":${'['.repeat(100)}${']'.repeat(100)}}`, {}, 400],
  ])('never reaches the t.upstream on a refusal: %s', async (_name, path, body, headers, status) => {
    const res = await send(t.gw.server.url, {
      path,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers },
      body,
    })
    expect(res.status).toBe(status)
    expect(res.headers['cache-control']).toBe('no-store')
    expect(t.upstream.requests).toEqual([])
    expect(t.gw.events).toHaveLength(1)
    expect(t.gw.events[0]!.event_type).toBe('security_violation')
  })
})

describe('requestGuard + forwardBody: limits, clamps and the layers around the guard', () => {
  const t = useGateway()

  it('never reaches the t.upstream when a chunked body passes the limit', async () => {
    const small = await gateway(t.upstream, { bodyLimit: '32kb' })
    try {
      const chunks = [
        Buffer.from('{"model":"x","pad":"'),
        ...Array.from({ length: 100 }, () => Buffer.alloc(8192, 0x61)),
      ]
      const res = await send(small.server.url, {
        path: '/v1/chat/completions',
        headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        chunks,
        chunkDelayMs: 2,
      })
      expect(res.status).toBe(413)
      expect(res.chunksSent).toBeLessThan(chunks.length)
      expect(t.upstream.requests).toEqual([])
      expect(small.events[0]).toMatchObject({ result: 'body_too_large' })
    } finally {
      await small.server.close()
    }
  })

  it('forwards the clamped body with a correct Content-Length', async () => {
    const clamp = await gateway(t.upstream, { onOverCap: 'clamp', maxTokens: 512 })
    try {
      const text =
        '{"model":"claude-sonnet-4-5",  "max_tokens" : 100000,"messages":[{"role":"user","content":"ẞ"}]}'
      const res = await postJson(clamp.server.url, '/v1/messages', text)
      expect(res.status).toBe(200)
      const expected = Buffer.from(text.replace('100000', '512'))
      expect(Buffer.compare(t.upstream.last!.body, expected)).toBe(0)
      expect(t.upstream.last!.headers['content-length']).toBe(String(expected.length))
      expect(clamp.events[0]).toMatchObject({ result: 'max_tokens_clamped' })
    } finally {
      await clamp.server.close()
    }
  })

  it('writes the body once even when forwardBody is called twice', async () => {
    const twice = await gateway(t.upstream, {}, [], (proxyReq, req, res) => {
      forwardBody(proxyReq, req, res)
      forwardBody(proxyReq, req, res)
    })
    try {
      const sent = Buffer.from(JSON.stringify(chat()))
      const res = await postJson(twice.server.url, '/v1/chat/completions', sent.toString())
      expect(res.status).toBe(200)
      expect(Buffer.compare(t.upstream.last!.body, sent)).toBe(0)
    } finally {
      await twice.server.close()
    }
  })

  it('forwards the re-serialized body when express.json() ran first (the documented caveat)', async () => {
    const parsed = await gateway(t.upstream, {}, [express.json()])
    try {
      const text =
        '{ "model" : "gpt-4o", "messages" : [ {"role":"user","content":"\\u00e9"} ], "max_tokens": 9 }'
      const res = await postJson(parsed.server.url, '/v1/chat/completions', text)
      expect(res.status).toBe(200)
      const expected = Buffer.from(JSON.stringify(JSON.parse(text)))
      expect(Buffer.compare(t.upstream.last!.body, expected)).toBe(0)
      expect(t.upstream.last!.headers['content-length']).toBe(String(expected.length))
      const refused = await postJson(parsed.server.url, '/v1/chat/completions', chat({ max_tokens: 99_999 }))
      expect(refused.status).toBe(400)
      expect(t.upstream.requests).toHaveLength(1)
    } finally {
      await parsed.server.close()
    }
  })

  it('forwards the body when an asynchronous layer before the guard resumes from a callback', async () => {
    // A rate limiter waiting on Redis resumes from a socket callback, in a microtask, with the whole
    // body parsed meanwhile. The guard must not leave the request's 'end' pending when it hands on:
    // the proxy's pipe of the request would end the t.upstream request before its socket came, with
    // the client's headers and without the body.
    const later: RequestHandler = (_req, _res, next) =>
      void setTimeout(() => void Promise.resolve().then(() => next()), 2)
    const slow = await gateway(t.upstream, {}, [later])
    try {
      for (const [path, body] of [
        ['/v1/chat/completions', chat()],
        ['/v1/messages', claude()],
      ] as const) {
        const sent = Buffer.from(JSON.stringify(body))
        const res = await postJson(slow.server.url, path, sent.toString())
        expect(res.status).toBe(200)
        expect(Buffer.compare(t.upstream.last!.body, sent)).toBe(0)
        expect(t.upstream.last!.headers['content-length']).toBe(String(sent.length))
      }
      expect(t.upstream.requests).toHaveLength(2)
    } finally {
      await slow.server.close()
    }
  })

  it('keeps streaming responses flowing through after the guard', async () => {
    const res = await postJson(t.gw.server.url, '/v1/messages', claude({ stream: true }))
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/)
    expect(res.text).toContain('event: message_stop')
  })
})

describe('forwardBody', () => {
  it('fails closed when the upstream request was already ended by someone else', async () => {
    const received: number[] = []
    const sink = await listen((req, res) => {
      let n = 0
      req.on('data', (c: Buffer) => (n += c.length))
      req.on('error', () => undefined)
      req.on('end', () => {
        received.push(n)
        res.end()
      })
    })
    const app = express()
    app.use(requestGuard())
    app.use(((req, res) => {
      const url = new URL('/sink', sink.url)
      const proxyReq = http.request({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        agent: false,
      })
      proxyReq.on('error', () => undefined)
      proxyReq.end()
      forwardBody(proxyReq, req, res)
      res.json({
        destroyed: proxyReq.destroyed,
        forwarded: res.locals.gatehouse?.requestGuard?.forwarded ?? false,
      })
    }) as RequestHandler)
    const gw = await listen(app)
    try {
      const res = await postJson(gw.url, '/v1/chat/completions', chat())
      expect(res.json).toEqual({ destroyed: true, forwarded: true })
      await new Promise((r) => setTimeout(r, 50))
      expect(received.filter((n) => n > 0)).toEqual([])
    } finally {
      await gw.close()
      await sink.close()
    }
  })
})
