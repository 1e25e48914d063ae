import express, { type RequestHandler } from 'express'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { MockUpstream, collectEvents, listen, type RunningServer } from '@gatehouse/testing'
import type { SecurityEvent } from '@gatehouse/core'
import { forwardBody, requestGuard, type RequestGuardOptions } from '@gatehouse/request-guard'

export interface Gateway {
  server: RunningServer
  events: SecurityEvent[]
}

/** The shape the reference server uses: guard, then http-proxy-middleware writing the guarded body. */
export async function gateway(
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
export function useGateway(): { upstream: MockUpstream; gw: Gateway } {
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
