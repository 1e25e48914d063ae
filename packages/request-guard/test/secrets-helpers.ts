import express, { type RequestHandler } from 'express'
import { createProxyMiddleware } from 'http-proxy-middleware'
import {
  MockUpstream,
  collectEvents,
  listen,
  recordingLogger,
  type RecordingLogger,
  type RunningServer,
} from '@gatehouse/testing'
import { gatehouseLocals, type SecurityEvent } from '@gatehouse/core'
import { forwardBody, requestGuard, type RequestGuardOptions } from '@gatehouse/request-guard'

export interface SecretGateway {
  url: string
  upstream: MockUpstream
  events: SecurityEvent[]
  /** Every logger call of the guard. */
  logger: RecordingLogger
}

/** Sets `clientKeyId` from `x-tenant`, as client-auth does from a client key. */
export const tenantFromHeader: RequestHandler = (req, res, next) => {
  const tenant = req.headers['x-tenant']
  if (typeof tenant === 'string') gatehouseLocals(res).clientKeyId = tenant
  next()
}

/**
 * The reference shape (guard, then http-proxy-middleware writing the guarded body to a mock
 * upstream that records what it receives), for one describe block: started before its tests and
 * reset before each.
 */
export function useSecretGateway(
  options: RequestGuardOptions = {},
  before: RequestHandler[] = [],
): SecretGateway {
  const gw = { url: '', events: [], logger: recordingLogger() } as unknown as SecretGateway
  let server: RunningServer
  beforeAll(async () => {
    gw.upstream = await MockUpstream.start()
    const { events, onEvent } = collectEvents()
    gw.events = events
    const app = express()
    for (const mw of before) app.use(mw)
    app.use(requestGuard({ ...options, onEvent, logger: gw.logger }))
    app.use(
      createProxyMiddleware({ target: gw.upstream.url, changeOrigin: true, on: { proxyReq: forwardBody } }),
    )
    server = await listen(app)
    gw.url = server.url
  })
  afterAll(async () => {
    await server.close()
    await gw.upstream.close()
  })
  beforeEach(() => {
    gw.upstream.reset()
    gw.events.length = 0
    gw.logger.calls.length = 0
  })
  return gw
}

/** An OpenAI chat body whose prompt holds `text`, with its output cap set (forwarded byte for byte). */
export const prompt = (text: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  model: 'gpt-4o-mini',
  messages: [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: [{ type: 'text', text }] },
  ],
  max_completion_tokens: 256,
  ...extra,
})

/** Where `prompt(text)` puts the text. */
export const PROMPT_PATH = '$.messages[1].content[0].text'
