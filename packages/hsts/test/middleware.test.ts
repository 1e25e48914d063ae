import express, { type ErrorRequestHandler, type Express } from 'express'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { GatehouseError, sendProviderError } from '@gatehouse/core'
import { createTestApp, hasIpv6Loopback, httpRequest, listen, MockUpstream, type HttpReply, type RunningServer } from '@gatehouse/testing'
import { hsts, SECURITY_HEADER_NAMES, type HstsOptions } from '@gatehouse/hsts'

const running: RunningServer[] = []
let upstream: MockUpstream | undefined
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()))
  await upstream?.close()
  upstream = undefined
})

async function serve(app: Express, host = '127.0.0.1'): Promise<string> {
  const s = await listen(app, host)
  running.push(s)
  return s.url
}

const send = (url: string, path: string, init: { method?: string; headers?: Record<string, string>; body?: string | undefined } = {}): Promise<HttpReply> =>
  httpRequest(url, { path, method: init.method ?? 'GET', ...(init.headers ? { headers: init.headers } : {}), ...(init.body !== undefined ? { body: init.body } : {}) })

/** The header set the seed asks for, with Gatehouse's defaults (see the README for each difference). */
const EXPECTED: Record<string, string> = {
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'x-xss-protection': '0',
  'content-security-policy': "default-src 'self'",
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'origin-agent-cluster': '?1',
  'referrer-policy': 'no-referrer',
  'x-dns-prefetch-control': 'off',
  'x-download-options': 'noopen',
  'x-permitted-cross-domain-policies': 'none',
  'cache-control': 'no-store',
}

function expectSecurityHeaders(r: HttpReply, csp = EXPECTED['content-security-policy']): void {
  for (const [name, value] of Object.entries(EXPECTED)) {
    expect([name, r.headers[name]]).toEqual([name, name === 'content-security-policy' ? csp : value])
  }
  expect(r.headers['x-powered-by']).toBeUndefined()
}

/** A plain express() app: X-Powered-By is on by default, and Express's own final handler answers errors. */
function plainApp(options: HstsOptions = {}): Express {
  const app = express()
  app.use(hsts(options))
  app.use(express.json())
  app.get('/ok', (_req, res) => void res.json({ ok: true }))
  app.get('/refuse', (req, res) => sendProviderError(res, 'openai', 403, { message: 'Access denied.' }))
  app.get('/gatehouse-error', (_req, _res, next) => next(new GatehouseError('GH_TEST_LIMIT', 'limited', 429)))
  app.get('/throws', () => {
    throw new Error('boom')
  })
  app.post('/json', (req, res) => void res.json(req.body))
  app.get('/stream', (_req, res) => {
    res.setHeader('Content-Type', 'text/event-stream')
    res.write('data: 1\n\n')
    setTimeout(() => res.end('data: [DONE]\n\n'), 10)
  })
  return app
}

describe('hsts: the headers are on every response the gateway makes', () => {
  it('on a normal response, with X-Powered-By removed although Express has it on', async () => {
    const app = plainApp()
    expect(app.enabled('x-powered-by')).toBe(true)
    const url = await serve(app)
    const r = await send(url, '/ok')
    expect(r.status).toBe(200)
    expect(r.body).toBe('{"ok":true}')
    expectSecurityHeaders(r)
  })

  it('on a refusal made by a later middleware (403, provider shape)', async () => {
    const url = await serve(plainApp())
    const r = await send(url, '/refuse')
    expect(r.status).toBe(403)
    expect(JSON.parse(r.body)).toEqual({ error: { message: 'Access denied.', type: 'invalid_request_error', param: null, code: 'forbidden' } })
    expectSecurityHeaders(r)
  })

  it('on an error rendered by an error handler', async () => {
    const app = plainApp()
    const onError: ErrorRequestHandler = (err: GatehouseError, _req, res, _next) => {
      res.status(err.statusCode).json({ code: err.code })
    }
    app.use(onError)
    const url = await serve(app)
    const r = await send(url, '/gatehouse-error')
    expect(r.status).toBe(429)
    expect(JSON.parse(r.body)).toEqual({ code: 'GH_TEST_LIMIT' })
    expectSecurityHeaders(r)
  })

  it.each<[string, string, number, Record<string, string>, string | undefined]>([
    ['a thrown error (Express final handler)', '/throws', 500, {}, undefined],
    ['an unknown route (404)', '/nowhere', 404, {}, undefined],
    ['a body parser error (400)', '/json', 400, { 'content-type': 'application/json' }, '{not json'],
  ])('on %s', async (_name, path, status, headers, body) => {
    const url = await serve(plainApp())
    const r = await send(url, path, { method: body ? 'POST' : 'GET', headers, body })
    expect(r.status).toBe(status)
    // Express's final handler sets its own stricter CSP on the pages it renders.
    expectSecurityHeaders(r, "default-src 'none'")
  })

  it('on a streamed (SSE) response', async () => {
    const url = await serve(plainApp())
    const r = await send(url, '/stream')
    expect(r.body).toBe('data: 1\n\ndata: [DONE]\n\n')
    expectSecurityHeaders(r)
  })

  it('with createTestApp and a GatehouseError passed to next()', async () => {
    const url = await serve(
      createTestApp(hsts(), (_req, _res, next) => next(new GatehouseError('GH_TEST_DENIED', 'no', 403))),
    )
    const r = await send(url, '/')
    expect(r.status).toBe(403)
    expect(JSON.parse(r.body)).toEqual({ code: 'GH_TEST_DENIED', message: 'no' })
    expectSecurityHeaders(r)
  })

  it('for HEAD and OPTIONS too', async () => {
    const url = await serve(plainApp())
    expectSecurityHeaders(await send(url, '/ok', { method: 'HEAD' }))
    const options = await send(url, '/ok', { method: 'OPTIONS' })
    expect(options.body).toMatch(/^GET, ?HEAD$/)
    expectSecurityHeaders(options)
  })
})

describe('hsts options on the wire', () => {
  it('enabled: false sends no security header but still removes X-Powered-By and sets Cache-Control', async () => {
    const url = await serve(plainApp({ enabled: false }))
    const r = await send(url, '/ok')
    for (const name of SECURITY_HEADER_NAMES) expect([name, r.headers[name]]).toEqual([name, undefined])
    expect(r.headers['x-powered-by']).toBeUndefined()
    expect(r.headers['cache-control']).toBe('no-store')
  })

  it('maps the seed\'s header values one to one', async () => {
    const url = await serve(
      plainApp({
        strictTransportSecurity: 'max-age=31536000; includeSubDomains',
        contentTypeOptions: 'nosniff',
        frameOptions: 'sameorigin',
        xssProtection: '1; mode=block',
        contentSecurityPolicy: "default-src 'none'; frame-ancestors 'none'",
      }),
    )
    const r = await send(url, '/ok')
    expect(r.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains')
    expect(r.headers['x-content-type-options']).toBe('nosniff')
    expect(r.headers['x-frame-options']).toBe('SAMEORIGIN')
    expect(r.headers['x-xss-protection']).toBe('1; mode=block')
    expect(r.headers['content-security-policy']).toBe("default-src 'none';frame-ancestors 'none'")
  })

  it('turns single headers off, and helmet\'s other defaults as a group', async () => {
    const url = await serve(
      plainApp({ contentTypeOptions: false, frameOptions: false, xssProtection: false, contentSecurityPolicy: false, helmetDefaults: false, cacheControl: false }),
    )
    const r = await send(url, '/ok')
    expect(r.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains')
    for (const name of SECURITY_HEADER_NAMES.filter((n) => n !== 'strict-transport-security')) {
      expect([name, r.headers[name]]).toEqual([name, undefined])
    }
    expect(r.headers['cache-control']).toBeUndefined()
  })

  it('sends a CSP from directives, as report-only when asked', async () => {
    const url = await serve(plainApp({ contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], 'report-uri': '/csp' }, reportOnly: true } }))
    const r = await send(url, '/ok')
    expect(r.headers['content-security-policy']).toBeUndefined()
    expect(r.headers['content-security-policy-report-only']).toBe("default-src 'none';report-uri /csp")
  })

  it('sets a custom Cache-Control', async () => {
    const url = await serve(plainApp({ cacheControl: 'no-store, max-age=0' }))
    expect((await send(url, '/ok')).headers['cache-control']).toBe('no-store, max-age=0')
  })
})

describe('hsts in front of a proxy (http-proxy-middleware and a mock LLM upstream)', () => {
  async function gateway(stripUpstreamSecurityHeaders: boolean): Promise<string> {
    upstream = await MockUpstream.start()
    const app = express()
    app.disable('x-powered-by')
    app.use(hsts())
    app.use(
      createProxyMiddleware({
        target: upstream.url,
        pathFilter: '/v1',
        on: stripUpstreamSecurityHeaders
          ? {
              proxyRes: (proxyRes) => {
                for (const name of SECURITY_HEADER_NAMES) delete proxyRes.headers[name]
              },
            }
          : {},
      }),
    )
    app.get('/healthz', (_req, res) => void res.json({ ok: true }))
    return serve(app)
  }

  it('keeps the upstream response\'s own Cache-Control and uses no-store where the upstream sends none', async () => {
    const url = await gateway(false)
    upstream!.behave({ headers: { 'cache-control': 'private, max-age=60' } })
    const proxied = await send(url, '/v1/models')
    expect(proxied.status).toBe(200)
    expect(JSON.parse(proxied.body)).toMatchObject({ object: 'list' })
    expect(proxied.headers['cache-control']).toBe('private, max-age=60')
    expect(proxied.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains')

    upstream!.reset()
    const bare = await send(url, '/v1/models')
    expect(bare.headers['cache-control']).toBe('no-store')

    const own = await send(url, '/healthz')
    expectSecurityHeaders(own)
  })

  it('lets an upstream\'s security headers replace the gateway\'s unless the proxy drops them', async () => {
    let url = await gateway(false)
    upstream!.behave({ headers: { 'x-frame-options': 'SAMEORIGIN', 'strict-transport-security': 'max-age=63072000; includeSubDomains; preload' } })
    let r = await send(url, '/v1/models')
    expect(r.headers['x-frame-options']).toBe('SAMEORIGIN')
    expect(r.headers['strict-transport-security']).toBe('max-age=63072000; includeSubDomains; preload')
    await upstream!.close()
    upstream = undefined

    url = await gateway(true)
    upstream!.behave({ headers: { 'x-frame-options': 'SAMEORIGIN', 'strict-transport-security': 'max-age=63072000; includeSubDomains; preload' } })
    r = await send(url, '/v1/models')
    expect(r.headers['x-frame-options']).toBe('DENY')
    expect(r.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains')
  })
})

const v6it = hasIpv6Loopback ? it : it.skip
describe('over IPv6', () => {
  v6it('sends the headers to a client on ::1', async () => {
    const url = await serve(plainApp(), '::1')
    expect(url).toMatch(/^http:\/\/\[::1\]:/)
    const r = await send(url, '/refuse')
    expect(r.status).toBe(403)
    expectSecurityHeaders(r)
  })
})
