import http from 'node:http'
import { join } from 'node:path'
import express, { type RequestHandler } from 'express'
import request from 'supertest'
import { gatehouseLocals } from '@gatehouse/core'
import { collectEvents, createTestApp, listen, recordingLogger, tempDir, waitFor } from '@gatehouse/testing'
import { accessLog, createAuditLogger, maskRequestUrl, verifyAuditLog } from '@gatehouse/audit-log'
import { newKey, parsedLines } from './helpers'

// What the server's earlier layers put in res.locals (request id, client auth, proxy usage).
const upstreamLayers: RequestHandler = (_req, res, next) => {
  const locals = gatehouseLocals(res)
  locals.requestId = 'req-abc'
  locals.clientKeyId = 'key_0a1b2c3d'
  locals.usage = { inputTokens: 12, outputTokens: 34 }
  next()
}

describe('accessLog', () => {
  it('adds the fields a details hook returns, masked, without overriding its own', async () => {
    const { events, onEvent } = collectEvents()
    const secret = `sk-ant-api03-${'q'.repeat(50)}`
    const app = createTestApp(
      accessLog({ onEvent, details: () => ({ credential_id: 'cred_0123', status: 999, note: `leaked ${secret}`, skipped: undefined }) }),
      upstreamLayers,
    )
    await request(app).get('/v1/models').expect(200)
    await waitFor(() => events.length === 1)
    expect(events[0]!.details).toMatchObject({ credential_id: 'cred_0123', status: 200 })
    expect(events[0]!.details).not.toHaveProperty('skipped')
    expect(JSON.stringify(events[0])).not.toContain(secret)
  })

  it('survives a details hook that throws', async () => {
    const { events, onEvent } = collectEvents()
    const app = createTestApp(accessLog({ onEvent, details: () => { throw new Error('boom') } }), upstreamLayers)
    await request(app).get('/v1/models').expect(200)
    await waitFor(() => events.length === 1)
    expect(events[0]!.details).toMatchObject({ status: 200 })
  })

  it('emits one provider_request event with the access-log fields when the response finishes', async () => {
    const { events, onEvent } = collectEvents()
    const app = createTestApp(accessLog({ onEvent }), upstreamLayers)
    await request(app).post('/v1/messages?beta=true').send({}).expect(200)
    await waitFor(() => events.length === 1)
    expect(events[0]).toEqual({
      timestamp: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/),
      event_type: 'provider_request',
      provider: 'claude',
      user_id: 'key_0a1b2c3d',
      ip: '127.0.0.1',
      request_id: 'req-abc',
      result: 'success',
      details: {
        method: 'POST',
        path: '/v1/messages?beta=****',
        status: 200,
        duration_ms: expect.any(Number),
        input_tokens: 12,
        output_tokens: 34,
        usage: 'reported',
      },
    })
    expect((events[0]!.details as { duration_ms: number }).duration_ms).toBeGreaterThanOrEqual(0)
  })

  it('logs the pessimistic bound, marked estimated, when the upstream got the request and reported no usage, and nothing when it never got it', async () => {
    const { events, onEvent } = collectEvents()
    const app = createTestApp(accessLog({ onEvent }), (req, res, next) => {
      const locals = gatehouseLocals(res)
      locals.tokenEstimate = { promptTokens: 100, outputTokens: 4096 }
      locals.upstreamReached = req.path !== '/v1/chat/completions'
      if (req.path === '/v1/messages') locals.upstreamStatus = 200
      next()
    })
    await request(app).post('/v1/messages').send({}).expect(200)
    await request(app).post('/v1/chat/completions').send({}).expect(200)
    await waitFor(() => events.length === 2)
    expect(events[0]!.details).toMatchObject({ input_tokens: 100, output_tokens: 4096, usage: 'estimated' })
    expect(events[1]!.details).not.toHaveProperty('input_tokens')
    expect(events[1]!.details).not.toHaveProperty('usage')
  })

  it('reads the provider from the path, and leaves token fields out when usage is unknown', async () => {
    const { events, onEvent } = collectEvents()
    const app = createTestApp(accessLog({ onEvent }))
    await request(app).get('/gemini/v1beta/models').expect(200)
    await request(app).get('/healthz').expect(200)
    await waitFor(() => events.length === 2)
    expect(events[0]).toMatchObject({ provider: 'gemini', details: { path: '/gemini/v1beta/models' } })
    expect(events[1]).not.toHaveProperty('provider')
    expect(events[1]!.details).not.toHaveProperty('input_tokens')
    expect(events[1]).not.toHaveProperty('user_id')
  })

  it.each([
    [404, 'client_error'],
    [429, 'client_error'],
    [502, 'server_error'],
  ])('records status %i as %s', async (status, result) => {
    const { events, onEvent } = collectEvents()
    const app = express()
    app.use(accessLog({ onEvent }))
    app.use((_req, res) => void res.status(status).json({ error: {} }))
    await request(app).get('/v1/models').expect(status)
    await waitFor(() => events.length === 1)
    expect(events[0]).toMatchObject({ result, details: { status } })
  })
})

describe('accessLog: aborted, masked, skipped and failing requests', () => {
  it('records a request the client abandoned as aborted', async () => {
    const { events, onEvent } = collectEvents()
    const app = express()
    app.use(accessLog({ onEvent }))
    app.get('/v1/models', () => undefined) // never answers
    const server = await listen(app)
    try {
      await new Promise<void>((resolve) => {
        const req = http.get(`${server.url}/v1/models`)
        req.on('error', () => resolve())
        setTimeout(() => {
          req.destroy()
          resolve()
        }, 50)
      })
      await waitFor(() => events.length === 1)
      expect(events[0]).toMatchObject({ event_type: 'provider_request', result: 'aborted', details: { method: 'GET' } })
    } finally {
      await server.close()
    }
  })

  it('masks every query value and any key in the path', async () => {
    const { events, onEvent } = collectEvents()
    const app = createTestApp(accessLog({ onEvent }))
    const gateKey = `gate_live_${'A'.repeat(43)}`
    await request(app).get(`/v1beta/models/${gateKey}?key=AIzaSyA${'b'.repeat(32)}&alt=sse&flag`).expect(200)
    await waitFor(() => events.length === 1)
    expect((events[0]!.details as { path: string }).path).toBe('/v1beta/models/gate_live_****?key=****&alt=****&****')
  })

  it('skips requests the skip option selects', async () => {
    const { events, onEvent } = collectEvents()
    const app = createTestApp(accessLog({ onEvent, skip: (req) => req.path === '/healthz' }))
    await request(app).get('/healthz').expect(200)
    await request(app).get('/v1/models').expect(200)
    await waitFor(() => events.length === 1)
    expect((events[0]!.details as { path: string }).path).toBe('/v1/models')
  })

  it('answers the request normally when onEvent throws, and logs the failure masked', async () => {
    const logger = recordingLogger()
    const secret = `sk-ant-api03-${'x'.repeat(40)}`
    const app = createTestApp(
      accessLog({
        logger,
        onEvent: () => {
          throw new Error(`sink failed for ${secret}`)
        },
      }),
    )
    await request(app).get('/v1/models').expect(200)
    await waitFor(() => logger.calls.length === 1)
    expect(logger.calls[0]).toMatchObject({ level: 'error', meta: { error: 'sink failed for sk-ant-****' } })
  })

  it('writes through the audit logger: the line carries the access-log fields and verifies', async () => {
    const { dir, cleanup } = tempDir()
    try {
      const file = join(dir, 'audit.log')
      const key = newKey()
      const audit = createAuditLogger({ file, key })
      const app = createTestApp(accessLog({ onEvent: audit.log }), upstreamLayers)
      await request(app).get('/openai/v1/chat/completions?api_key=sk-proj-abcdefghijklmnopqrstuvwx').expect(200)
      await waitFor(() => audit.stats().accepted === 1)
      await audit.close()
      const [line] = parsedLines(file)
      expect(line).toMatchObject({
        event_type: 'provider_request',
        provider: 'openai',
        user_id: 'key_0a1b2c3d',
        request_id: 'req-abc',
        ip: '127.0.0.1',
        result: 'success',
        details: { method: 'GET', path: '/openai/v1/chat/completions?api_key=****', status: 200, input_tokens: 12, output_tokens: 34 },
      })
      expect(await verifyAuditLog(file, key)).toMatchObject({ ok: true, lines: 1 })
    } finally {
      cleanup()
    }
  })

  it('refuses options without onEvent, unknown options and a factory passed uncalled', async () => {
    expect(() => accessLog({} as never)).toThrow(expect.objectContaining({ code: 'GH_AUDIT_INVALID_OPTIONS', message: expect.stringMatching(/^@gatehouse\/audit-log: onEvent is required/) }))
    expect(() => accessLog({ onEvent: () => undefined, skp: () => true } as never)).toThrow(
      expect.objectContaining({ code: 'GH_AUDIT_UNKNOWN_OPTION', message: expect.stringContaining('did you mean "skip"') }),
    )
    const res = await request(createTestApp(accessLog as unknown as RequestHandler)).get('/').expect(500)
    expect(res.body).toMatchObject({ code: 'GH_AUDIT_NOT_CALLED' })
  })
})

describe('maskRequestUrl', () => {
  const mask = { text: (s: string) => s.replace(/sk-ant-[A-Za-z0-9-]+/g, 'sk-ant-****') }
  it.each([
    ['/v1/models', '/v1/models'],
    ['/v1/models?', '/v1/models?'],
    ['/v1/models?a=1&b=2', '/v1/models?a=****&b=****'],
    ['/x?sk-ant-abc=1', '/x?sk-ant-****=****'],
    ['/sk-ant-abc/y?token', '/sk-ant-****/y?****'],
  ])('%s → %s', (input, output) => {
    expect(maskRequestUrl(input, mask)).toBe(output)
  })

  it('caps very long paths', () => {
    expect(maskRequestUrl(`/${'a'.repeat(5000)}`, mask).length).toBeLessThanOrEqual(2049)
  })
})
