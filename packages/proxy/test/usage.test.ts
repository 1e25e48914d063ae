import http from 'node:http'
import type { AddressInfo } from 'node:net'
import zlib from 'node:zlib'
import { randomBytes } from 'node:crypto'
import express, { type RequestHandler } from 'express'
import { gatehouseLocals, tokenCharge } from '@gatehouse/core'
import { listen, MockUpstream, sleep } from '@gatehouse/testing'
import { gatehouseProxy, type ProxyOptions } from '@gatehouse/proxy'

/**
 * What the proxy tells the limits (upstreamReached, upstreamStatus, usage) for every answer shape,
 * against the mock provider over loopback. Where an upstream must misbehave in a way the mock does
 * not (compress, end a stream early), a small server in front of the mock changes its answer.
 */

const key = (prefix: string): string => prefix + randomBytes(30).toString('base64url')
const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }
const claudeBody = {
  model: 'claude-sonnet-4-5',
  max_tokens: 100,
  messages: [{ role: 'user', content: 'hi' }],
}

interface Seen {
  upstreamReached: unknown
  upstreamStatus: unknown
  usage: unknown
  charged: string
}

/** Records the locals and tokenCharge's verdict when the response is done, as the limits read them. */
const observe =
  (seen: Seen[]): RequestHandler =>
  (_req, res, next) => {
    // What request-guard would have estimated: lets tokenCharge tell "estimated" from "unknown".
    gatehouseLocals(res).tokenEstimate = { promptTokens: 10, outputTokens: 100 }
    res.once('close', () => {
      const l = gatehouseLocals(res)
      seen.push({
        upstreamReached: l.upstreamReached,
        upstreamStatus: l.upstreamStatus,
        usage: l.usage,
        charged: tokenCharge(res).source,
      })
    })
    next()
  }

async function mount(
  options: Partial<ProxyOptions> & { providers: ProxyOptions['providers'] },
  before: RequestHandler[] = [],
) {
  const proxy = gatehouseProxy(options)
  const app = express()
  for (const mw of before) app.use(mw)
  app.use(proxy)
  const server = await listen(app)
  return { url: server.url, close: async () => (await server.close(), proxy.close()) }
}

/** A server in front of the mock upstream that hands each of its answers to `shape`. */
async function front(
  upstream: MockUpstream,
  shape: (up: http.IncomingMessage, res: http.ServerResponse) => void,
) {
  const server = http.createServer((req, res) => {
    const up = http.request(
      `${upstream.url}${req.url ?? '/'}`,
      { method: req.method, headers: req.headers },
      (u) => shape(u, res),
    )
    up.on('error', () => res.destroy())
    req.pipe(up)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  }
}

const headersOf = (u: http.IncomingMessage): http.OutgoingHttpHeaders => {
  const h: http.OutgoingHttpHeaders = { ...u.headers }
  for (const name of ['content-length', 'transfer-encoding', 'connection', 'keep-alive']) delete h[name]
  return h
}

type Encoding = 'gzip' | 'br' | 'deflate'
const compressor = (e: Encoding): zlib.Gzip | zlib.BrotliCompress | zlib.Deflate =>
  e === 'gzip' ? zlib.createGzip() : e === 'br' ? zlib.createBrotliCompress() : zlib.createDeflate()
const decompress = (e: Encoding, b: Buffer): Buffer =>
  e === 'gzip' ? zlib.gunzipSync(b) : e === 'br' ? zlib.brotliDecompressSync(b) : zlib.inflateSync(b)

/** Compresses every answer, whatever the request's Accept-Encoding; a stream is flushed event by event. */
const compressing = (e: Encoding) => (u: http.IncomingMessage, res: http.ServerResponse) => {
  res.writeHead(u.statusCode ?? 502, { ...headersOf(u), 'content-encoding': e })
  const z = compressor(e)
  z.pipe(res)
  u.on('data', (d: Buffer) => {
    z.write(d)
    z.flush()
  })
  u.on('end', () => z.end())
}

/** Ends the answer cleanly (a well-formed end of body) as soon as it has relayed `marker`. */
const endingAfter = (marker: string) => (u: http.IncomingMessage, res: http.ServerResponse) => {
  res.writeHead(u.statusCode ?? 502, headersOf(u))
  let text = ''
  u.on('data', (d: Buffer) => {
    if (res.writableEnded) return
    res.write(d)
    text += d.toString()
    if (text.includes(marker)) {
      res.end()
      u.destroy()
    }
  })
  u.on('end', () => res.end())
}

/** POST and read the raw answer (no decompression). */
function post(
  url: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url)
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip, br, deflate', ...headers },
      },
      (res) => {
        const parts: Buffer[] = []
        res.on('data', (d: Buffer) => parts.push(d))
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }),
        )
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(typeof body === 'string' ? body : JSON.stringify(body))
  })
}

const settle = async (seen: Seen[], n: number): Promise<void> => {
  for (let i = 0; i < 100 && seen.length < n; i++) await sleep(10)
}

/** A mock provider for the tests of one describe block: started before them, reset before each, closed after. */
function mockUpstream(): { upstream: MockUpstream } {
  const mock = { upstream: undefined as unknown as MockUpstream }
  beforeAll(async () => {
    mock.upstream = await MockUpstream.start()
  })
  afterAll(() => mock.upstream.close())
  beforeEach(() => mock.upstream.reset())
  return mock
}

const providers = (url: string): ProxyOptions['providers'] => ({
  openai: { baseUrl: url, apiKey: key('sk-proj-') },
  claude: { baseUrl: url, apiKey: key('sk-ant-api03-') },
  gemini: { baseUrl: url, apiKey: key('AIza') },
})
const shapes: Array<[string, string, unknown, Record<string, string>, (text: string) => void]> = [
  [
    'OpenAI JSON',
    '/v1/chat/completions',
    chat,
    {},
    (t) => expect(JSON.parse(t)).toMatchObject({ object: 'chat.completion' }),
  ],
  [
    'Anthropic SSE',
    '/v1/messages',
    { ...claudeBody, stream: true },
    { 'anthropic-version': '2023-06-01' },
    (t) => expect(t).toContain('event: message_stop'),
  ],
  [
    'Gemini SSE',
    '/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse',
    { contents: [{ parts: [{ text: 'hi' }] }] },
    {},
    (t) => expect(t).toContain('"finishReason":"STOP"'),
  ],
]

describe('usage from every answer shape: compressed answers', () => {
  const mock = mockUpstream()

  describe.each<Encoding>(['gzip', 'br', 'deflate'])(
    'an upstream that answers %s though asked for identity',
    (encoding) => {
      it.each(shapes)(
        'meters %s from a decompressed copy and relays the bytes it sent',
        async (_what, path, body, headers, check) => {
          const z = await front(mock.upstream, compressing(encoding))
          const seen: Seen[] = []
          const gw = await mount({ providers: providers(z.url) }, [observe(seen)])
          try {
            mock.upstream.behave({ chunks: 5, usage: { input: 21, output: 34 } })
            const res = await post(gw.url, path, body, headers)
            expect(res.status).toBe(200)
            expect(mock.upstream.last!.headers['accept-encoding']).toBe('identity')
            expect(res.headers['content-encoding']).toBe(encoding)
            check(decompress(encoding, res.body).toString())
            await settle(seen, 1)
            expect(seen).toEqual([
              {
                upstreamReached: true,
                upstreamStatus: 200,
                usage: { inputTokens: 21, outputTokens: 34 },
                charged: 'reported',
              },
            ])
          } finally {
            await gw.close()
            await z.close()
          }
        },
      )
    },
  )

  it('reads the usage at the end of a 5 MiB answer, plain and compressed', async () => {
    const z = await front(mock.upstream, compressing('gzip'))
    const seen: Seen[] = []
    const plain = await mount({ providers: providers(mock.upstream.url) }, [observe(seen)])
    const gz = await mount({ providers: providers(z.url) }, [observe(seen)])
    try {
      mock.upstream.behave({ chunks: 700_000, usage: { input: 100_000, output: 300_000 } })
      const a = await post(plain.url, '/v1/chat/completions', chat)
      expect(a.body.length).toBeGreaterThan(5 * 1024 * 1024)
      const b = await post(gz.url, '/v1/chat/completions', chat)
      expect(decompress('gzip', b.body).length).toBe(a.body.length)
      await settle(seen, 2)
      expect(seen.map((s) => s.usage)).toEqual([
        { inputTokens: 100_000, outputTokens: 300_000 },
        { inputTokens: 100_000, outputTokens: 300_000 },
      ])
    } finally {
      await plain.close()
      await gz.close()
      await z.close()
    }
  }, 30_000)
})

describe('usage from every answer shape: streams cut short', () => {
  const mock = mockUpstream()

  describe('streams that end without their final usage event: no usage, the bound is charged', () => {
    it.each([false, true])(
      'an Anthropic stream ended cleanly after message_start (batching %s)',
      async (batching) => {
        const cut = await front(mock.upstream, endingAfter('content_block_delta'))
        const seen: Seen[] = []
        const gw = await mount({ batching, providers: providers(cut.url) }, [observe(seen)])
        try {
          mock.upstream.behave({ chunks: 5, usage: { input: 50, output: 70 } })
          const res = await post(
            gw.url,
            '/v1/messages',
            { ...claudeBody, stream: true },
            { 'anthropic-version': '2023-06-01' },
          )
          expect(res.status).toBe(200)
          expect(res.body.toString()).toContain('"input_tokens":50')
          expect(res.body.toString()).not.toContain('message_delta')
          await settle(seen, 1)
          expect(seen).toEqual([
            { upstreamReached: true, upstreamStatus: 200, usage: undefined, charged: 'estimated' },
          ])
        } finally {
          await gw.close()
          await cut.close()
        }
      },
    )

    it('a Gemini stream ended before its finishReason chunk', async () => {
      const cut = await front(mock.upstream, endingAfter('chunk1 '))
      const seen: Seen[] = []
      const gw = await mount({ providers: providers(cut.url) }, [observe(seen)])
      try {
        mock.upstream.behave({ chunks: 5, chunkIntervalMs: 5, usage: { input: 50, output: 70 } })
        const res = await post(gw.url, '/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse', {
          contents: [{ parts: [{ text: 'hi' }] }],
        })
        expect(res.body.toString()).toContain('"promptTokenCount":50')
        await settle(seen, 1)
        expect(seen).toEqual([
          { upstreamReached: true, upstreamStatus: 200, usage: undefined, charged: 'estimated' },
        ])
      } finally {
        await gw.close()
        await cut.close()
      }
    })

    it.each([false, true])(
      'a stream the upstream dropped, or left idle past the idle timeout (batching %s)',
      async (batching) => {
        const seen: Seen[] = []
        const gw = await mount({ batching, timeouts: { idle: 150 }, providers: providers(mock.upstream.url) }, [
          observe(seen),
        ])
        try {
          for (const b of [{ dropAfterChunks: 2 }, { stallAfterChunks: 2 }]) {
            mock.upstream.behave({ chunks: 5, usage: { input: 50, output: 70 }, ...b })
            await post(
              gw.url,
              '/v1/messages',
              { ...claudeBody, stream: true },
              { 'anthropic-version': '2023-06-01' },
            ).catch(() => undefined)
          }
          await settle(seen, 2)
          expect(seen).toEqual([
            { upstreamReached: true, upstreamStatus: 200, usage: undefined, charged: 'estimated' },
            { upstreamReached: true, upstreamStatus: 200, usage: undefined, charged: 'estimated' },
          ])
        } finally {
          await gw.close()
        }
      },
    )

    it('a client that left after message_start (batching on)', async () => {
      const seen: Seen[] = []
      const gw = await mount({ batching: true, providers: providers(mock.upstream.url) }, [observe(seen)])
      try {
        mock.upstream.behave({ chunks: 40, chunkIntervalMs: 20, usage: { input: 50, output: 70 } })
        const controller = new AbortController()
        const res = await fetch(`${gw.url}/v1/messages`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
          body: JSON.stringify({ ...claudeBody, stream: true }),
          signal: controller.signal,
        })
        const first = await res.body!.getReader().read()
        expect(Buffer.from(first.value!).toString()).toContain('message_start')
        controller.abort()
        await settle(seen, 1)
        expect(seen).toEqual([
          { upstreamReached: true, upstreamStatus: 200, usage: undefined, charged: 'estimated' },
        ])
        // The upstream request was ended too, not left to run.
        for (let i = 0; i < 50 && mock.upstream.aborted === 0; i++) await sleep(10)
        expect(mock.upstream.aborted).toBe(1)
      } finally {
        await gw.close()
      }
    })
  })
})

describe('usage from every answer shape: no answer, a client gone, an error status', () => {
  const mock = mockUpstream()

  it.each([false, true])(
    'an upstream that never answers: 504, reached, no status (batching %s)',
    async (batching) => {
      const seen: Seen[] = []
      const gw = await mount({ batching, timeouts: { firstByte: 150 }, providers: providers(mock.upstream.url) }, [
        observe(seen),
      ])
      try {
        mock.upstream.behave({ stall: true })
        expect((await post(gw.url, '/v1/chat/completions', chat)).status).toBe(504)
        await settle(seen, 1)
        expect(seen).toEqual([
          { upstreamReached: true, upstreamStatus: undefined, usage: undefined, charged: 'estimated' },
        ])
      } finally {
        await gw.close()
      }
    },
  )

  it('a client that left before the upstream answered: reached, no status, the bound', async () => {
    const seen: Seen[] = []
    const gw = await mount({ providers: providers(mock.upstream.url) }, [observe(seen)])
    try {
      mock.upstream.behave({ delayMs: 300 })
      const controller = new AbortController()
      const pending = fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(chat),
        signal: controller.signal,
      }).catch(() => undefined)
      for (let i = 0; i < 50 && mock.upstream.requests.length === 0; i++) await sleep(10)
      controller.abort()
      await pending
      await settle(seen, 1)
      expect(seen).toEqual([
        { upstreamReached: true, upstreamStatus: undefined, usage: undefined, charged: 'estimated' },
      ])
    } finally {
      await gw.close()
    }
  })

  it('charges nothing for an upstream error status, though its body is read', async () => {
    const seen: Seen[] = []
    const gw = await mount({ providers: providers(mock.upstream.url) }, [observe(seen)])
    try {
      for (const status of [400, 429, 500]) {
        mock.upstream.behave({ failStatus: status })
        expect(
          (await post(gw.url, '/v1/messages', claudeBody, { 'anthropic-version': '2023-06-01' })).status,
        ).toBe(status)
      }
      await settle(seen, 3)
      expect(seen.map((s) => [s.upstreamReached, s.upstreamStatus, s.usage, s.charged])).toEqual([
        [true, 400, undefined, 'none'],
        [true, 429, undefined, 'none'],
        [true, 500, undefined, 'none'],
      ])
    } finally {
      await gw.close()
    }
  })
})

describe('usage from every answer shape: OpenAI streams', () => {
  const mock = mockUpstream()

  describe('OpenAI streams without include_usage (streamUsage)', () => {
    /** What the mock sends a client, without what varies per answer. */
    const stable = (t: string): string => t.replace(/"(id|created)":("[^"]*"|\d+)/g, '')

    it('asks for usage in the validated body bytes, fixes Content-Length, and relays the stream the client asked for', async () => {
      const seen: Seen[] = []
      // request-guard's rawBody: its exact bytes (spacing, a cap written into the text) must reach the provider.
      const raw = Buffer.from(
        '{"model":"gpt-4o-mini", "stream": true, "max_tokens":  64, "messages":[{"role":"user","content":"hi"}]}',
      )
      const gw = await mount({ body: () => raw, providers: providers(mock.upstream.url) }, [observe(seen)])
      try {
        mock.upstream.behave({ chunks: 6, usage: { input: 12, output: 34 } })
        const res = await post(gw.url, '/v1/chat/completions', raw.toString())
        const sent = mock.upstream.last!
        expect(sent.body.toString()).toBe(
          `${raw.toString().slice(0, -1)},"stream_options":{"include_usage":true}}`,
        )
        expect(sent.headers['content-length']).toBe(String(sent.body.length))
        // The same stream as a client that did not ask gets from the provider, but for "usage":null.
        const direct = await post(mock.upstream.url, '/v1/chat/completions', raw.toString())
        expect(stable(res.body.toString()).replaceAll(',"usage":null', '')).toBe(
          stable(direct.body.toString()),
        )
        await settle(seen, 1)
        expect(seen).toEqual([
          {
            upstreamReached: true,
            upstreamStatus: 200,
            usage: { inputTokens: 12, outputTokens: 34 },
            charged: 'reported',
          },
        ])
      } finally {
        await gw.close()
      }
    })

    it('does the same for completions and Gemini’s OpenAI-compatible chat, and nothing with streamUsage: false', async () => {
      const seen: Seen[] = []
      const on = await mount({ providers: providers(mock.upstream.url) }, [express.json(), observe(seen)])
      const off = await mount({ streamUsage: false, providers: providers(mock.upstream.url) }, [
        express.json(),
        observe(seen),
      ])
      try {
        mock.upstream.behave({ chunks: 2, usage: { input: 5, output: 6 } })
        const completions = await post(on.url, '/v1/completions', {
          model: 'gpt-3.5-turbo-instruct',
          prompt: 'hi',
          stream: true,
        })
        expect(mock.upstream.last!.json).toMatchObject({ stream_options: { include_usage: true } })
        expect(completions.body.toString()).not.toContain('"choices":[]')
        await post(on.url, '/v1beta/openai/chat/completions', {
          ...chat,
          model: 'gemini-2.0-flash',
          stream: true,
        })
        expect(mock.upstream.last!.path).toBe('/v1beta/openai/chat/completions')
        expect(mock.upstream.last!.json).toMatchObject({ stream_options: { include_usage: true } })
        const plain = await post(off.url, '/v1/chat/completions', { ...chat, stream: true })
        expect(mock.upstream.last!.json).toEqual({ ...chat, stream: true })
        expect(plain.body.toString()).not.toContain('"usage"')
        await settle(seen, 3)
        expect(seen.map((s) => [s.usage, s.charged])).toEqual([
          [{ inputTokens: 5, outputTokens: 6 }, 'reported'],
          [undefined, 'none'], // the mock has no such route: 404
          [undefined, 'estimated'],
        ])
      } finally {
        await on.close()
        await off.close()
      }
    })

    it('masks the injected key in a stream whose usage event it removes, the stream split anywhere', async () => {
      const secret = key('sk-proj-')
      // The upstream echoes the key in its content and sends its bytes in small, arbitrary pieces.
      const echo = await front(mock.upstream, (u, res) => {
        res.writeHead(u.statusCode ?? 502, headersOf(u))
        const parts: Buffer[] = []
        u.on('data', (d: Buffer) => parts.push(d))
        u.on('end', () => {
          const all = Buffer.from(Buffer.concat(parts).toString().replace('chunk1 ', `${secret} `))
          let i = 0
          const next = (): void => {
            if (i >= all.length) return void res.end()
            res.write(all.subarray(i, (i += 7)))
            setImmediate(next)
          }
          next()
        })
      })
      const seen: Seen[] = []
      const gw = await mount({ providers: { openai: { baseUrl: echo.url, apiKey: secret } } }, [
        express.json(),
        observe(seen),
      ])
      try {
        mock.upstream.behave({ chunks: 3, usage: { input: 1, output: 2 } })
        const text = (await post(gw.url, '/v1/chat/completions', { ...chat, stream: true })).body.toString()
        expect(text).not.toContain(secret)
        expect(text).toContain('sk-proj-****')
        expect(text).not.toContain('"choices":[]')
        expect(text.endsWith('data: [DONE]\n\n')).toBe(true)
        await settle(seen, 1)
        expect(seen[0]!.usage).toEqual({ inputTokens: 1, outputTokens: 2 })
      } finally {
        await gw.close()
        await echo.close()
      }
    })
  })
})
