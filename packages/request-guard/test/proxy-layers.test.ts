import express, { type RequestHandler } from 'express'
import { forwardBody } from '@gatehouse/request-guard'
import { chat, claude, postJson, send } from './helpers'
import { gateway, useGateway } from './proxy-helpers'

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
