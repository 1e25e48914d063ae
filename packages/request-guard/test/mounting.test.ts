import http from 'node:http'
import express, { type RequestHandler } from 'express'
import { gatehouseLocals, type Logger } from '@gatehouse/core'
import { collectEvents, createTestApp, listen, sleep } from '@gatehouse/testing'
import { requestGuard } from '@gatehouse/request-guard'
import {
  CLAUDE_PATH,
  OPENAI_PATH,
  chat,
  claude,
  expectClaudeError,
  expectOpenAIError,
  postJson,
  startGuarded,
} from './helpers'

describe('requestGuard behind another body parser', () => {
  it('checks a body express.json() already parsed, and re-serializes it', async () => {
    const { events, onEvent } = collectEvents()
    const app = express()
    app.use(express.json({ limit: '1mb' }))
    app.use(requestGuard({ onEvent }))
    app.use(((req, res) => {
      const state = gatehouseLocals(res).requestGuard!
      res.json({
        body: req.body as unknown,
        raw: state.rawBody.toString('utf8'),
        reserialized: state.reserialized,
        length: req.headers['content-length'],
      })
    }) as RequestHandler)
    const server = await listen(app)
    try {
      const text = '{ "model": "gpt-4o",   "messages": [{"role":"user","content":"hi"}], "max_tokens": 50 }'
      const ok = await postJson(server.url, OPENAI_PATH, text)
      expect(ok.status).toBe(200)
      expect(ok.json).toEqual({
        body: JSON.parse(text),
        raw: JSON.stringify(JSON.parse(text)),
        reserialized: true,
        length: String(Buffer.byteLength(JSON.stringify(JSON.parse(text)))),
      })
      const over = await postJson(server.url, OPENAI_PATH, chat({ max_tokens: 5000 }))
      expect(over.status).toBe(400)
      expectOpenAIError(over.json, 'max_tokens', 'integer_above_max_value')
      const polluted = await postJson(
        server.url,
        OPENAI_PATH,
        '{"model":"x","messages":[],"__proto__":{"x":1}}',
      )
      expect(polluted.status).toBe(400)
      expectOpenAIError(polluted.json, '__proto__', null)
      const deep = await postJson(
        server.url,
        '/v1/embeddings',
        `{"model":"x","input":${'['.repeat(80)}${']'.repeat(80)}}`,
      )
      expect(deep.status).toBe(400)
      const notObject = await postJson(server.url, OPENAI_PATH, '[1]')
      expect(notObject.status).toBe(400)
      expect(events.map((e) => e.result)).toEqual([
        'max_tokens_exceeded',
        'forbidden_key',
        'too_deep',
        'not_an_object',
      ])
    } finally {
      await server.close()
    }
  })

  it('uses the exact bytes that express.raw() kept', async () => {
    const app = express()
    app.use(express.raw({ type: 'application/json' }))
    app.use(requestGuard())
    app.use(((_req, res) => {
      const state = gatehouseLocals(res).requestGuard!
      res.json({ raw: state.rawBody.toString('utf8'), reserialized: state.reserialized })
    }) as RequestHandler)
    const server = await listen(app)
    try {
      const text = '{"model":"gpt-4o" ,"messages":[{"role":"user","content":"hi"}],"max_tokens":50}\n'
      const res = await postJson(server.url, OPENAI_PATH, text)
      expect(res.json).toEqual({ raw: text, reserialized: false })
      expect((await postJson(server.url, OPENAI_PATH, chat({ max_tokens: 9999 }))).status).toBe(400)
    } finally {
      await server.close()
    }
  })

  it('passes a 500 to the error handler when a body was consumed and nothing was kept', async () => {
    const errors: string[] = []
    const logger: Logger = {
      error: (m) => void errors.push(m),
      warn: () => undefined,
      info: () => undefined,
      debug: () => undefined,
    }
    const swallow: RequestHandler = (req, _res, next) => {
      req.on('end', () => next())
      req.resume()
    }
    const server = await listen(createTestApp(swallow, requestGuard({ logger })))
    try {
      const res = await postJson(server.url, OPENAI_PATH, chat())
      expect(res.status).toBe(500)
      expect(res.json).toEqual({
        code: 'GH_RG_BODY_UNAVAILABLE',
        message: expect.stringContaining('consumed before the guard'),
      })
      expect(errors[0]).toContain('mount the guard before body parsers')
    } finally {
      await server.close()
    }
  })
})

describe('requestGuard failure handling', () => {
  const quietLogger = (errors: string[]): Logger => ({
    error: (m) => void errors.push(m),
    warn: () => undefined,
    info: () => undefined,
    debug: () => undefined,
  })

  it('turns an unexpected failure into next(err) with GH_RG_INTERNAL, logged, nothing forwarded', async () => {
    const errors: string[] = []
    // The guard is the first to read readableEnded: make that one read fail, as a bug would.
    const broken: RequestHandler = (req, _res, next) => {
      Object.defineProperty(req, 'readableEnded', {
        configurable: true,
        get() {
          delete (req as { readableEnded?: boolean }).readableEnded
          throw new Error('broken request object')
        },
      })
      next()
    }
    const server = await listen(createTestApp(broken, requestGuard({ logger: quietLogger(errors) })))
    try {
      const res = await postJson(server.url, OPENAI_PATH, chat())
      expect(res.status).toBe(500)
      expect(res.json).toEqual({
        code: 'GH_RG_INTERNAL',
        message: '@gatehouse/request-guard: the request body could not be checked',
      })
      expect(errors).toEqual(['@gatehouse/request-guard: internal error'])
    } finally {
      await server.close()
    }
  })

  it('still answers when the logger itself throws', async () => {
    const throwing: Logger = {
      error: () => {
        throw new Error('log sink down')
      },
      warn: () => undefined,
      info: () => undefined,
      debug: () => {
        throw new Error('log sink down')
      },
    }
    const server = await listen(createTestApp(requestGuard({ logger: throwing })))
    try {
      const res = await postJson(server.url, CLAUDE_PATH, claude({ max_tokens: 99_999 }))
      expect(res.status).toBe(400)
      expectClaudeError(res.json)
    } finally {
      await server.close()
    }
  })

  it('treats a string that express.json({ strict: false }) produced as a JSON value, not as text', async () => {
    const { events, onEvent } = collectEvents()
    const server = await listen(createTestApp(express.json({ strict: false }), requestGuard({ onEvent })))
    try {
      const res = await postJson(server.url, OPENAI_PATH, JSON.stringify(JSON.stringify(chat())))
      expect(res.status).toBe(400)
      expectOpenAIError(res.json, null, 'invalid_type')
      expect(events[0]).toMatchObject({ result: 'not_an_object' })
    } finally {
      await server.close()
    }
  })

  it('checks a body that arrives in pieces exactly as one that arrives with the headers', async () => {
    // A body already parsed when the guard runs is read from the stream's buffer at once; one still
    // arriving is read from 'data' events. Both must see the same bytes and give the same answers.
    // Behind an asynchronous layer (as in the gateway) the whole body is parsed before the guard runs.
    const later: RequestHandler = (_req, _res, next) => void setImmediate(next)
    for (const app of [
      await startGuarded({ providers: { openai: { maxTokens: 100 } } }),
      await startGuarded({ providers: { openai: { maxTokens: 100 } } }, later),
    ]) {
      const post = (text: string, pieces: number) =>
        new Promise<{
          status: number
          json: { locals?: { requestGuard?: { rawBody: { data: number[] } } } }
        }>((resolve, reject) => {
          const url = new URL(OPENAI_PATH, app.url)
          const bytes = Buffer.from(text)
          const req = http.request(
            {
              host: url.hostname,
              port: url.port,
              path: url.pathname,
              method: 'POST',
              agent: false,
              headers: { 'content-type': 'application/json', 'content-length': bytes.length },
            },
            (res) => {
              let body = ''
              res.setEncoding('utf8')
              res.on('data', (d: string) => (body += d))
              res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(body) as never }))
            },
          )
          req.on('error', reject)
          const size = Math.ceil(bytes.length / pieces)
          const write = (i: number): void => {
            if (i >= bytes.length) return void req.end()
            req.write(bytes.subarray(i, i + size))
            setTimeout(() => write(i + size), 30)
          }
          write(0)
        })
      try {
        const ok = JSON.stringify(chat({ max_tokens: 50, note: 'é ✓' }))
        const whole = await post(ok, 1)
        const pieces = await post(ok, 4)
        expect([whole.status, pieces.status]).toEqual([200, 200])
        expect(Buffer.from(whole.json.locals!.requestGuard!.rawBody.data).toString()).toBe(ok)
        expect(Buffer.from(pieces.json.locals!.requestGuard!.rawBody.data).toString()).toBe(ok)
        const over = JSON.stringify(chat({ max_tokens: 500 }))
        expect([(await post(over, 1)).status, (await post(over, 3)).status]).toEqual([400, 400])
        expect([(await post('{"model":', 1)).status, (await post('{"model":', 2)).status]).toEqual([400, 400])
      } finally {
        await app.close()
      }
    }
  })

  it('survives a client that disconnects mid-body, without an event', async () => {
    const app = await startGuarded()
    try {
      const url = new URL(OPENAI_PATH, app.url)
      await new Promise<void>((resolve) => {
        const req = http.request({
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json', 'content-length': 1000 },
        })
        req.on('error', () => resolve())
        req.write('{"model":"gpt-4o","messages":[')
        setTimeout(() => {
          req.destroy()
          resolve()
        }, 50).unref()
      })
      await sleep(50)
      expect((await postJson(app.url, OPENAI_PATH, chat())).status).toBe(200)
      expect(app.events).toEqual([])
    } finally {
      await app.close()
    }
  })
})
