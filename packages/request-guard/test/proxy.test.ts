import http from 'node:http'
import express, { type RequestHandler } from 'express'
import { listen, sleep } from '@gatehouse/testing'
import { forwardBody, requestGuard } from '@gatehouse/request-guard'
import { GEMINI_PATH, chat, claude, gemini, postJson, send } from './helpers'
import { useGateway } from './proxy-helpers'

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
      await sleep(50)
      expect(received.filter((n) => n > 0)).toEqual([])
    } finally {
      await gw.close()
      await sink.close()
    }
  })
})
