import http from 'node:http'
import https from 'node:https'
import type { Express } from 'express'
import {
  collectEvents,
  createTestApp,
  generateCertificate,
  hasIpv6Loopback,
  httpRequest,
  listen,
  type GeneratedCertificate,
  type HttpReply,
  type RunningServer,
} from '@gatehouse/testing'
import { hsts, httpsOnly, type HttpsOnlyOptions } from '@gatehouse/hsts'

let tls: GeneratedCertificate
beforeAll(() => {
  tls = generateCertificate({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1', '::1'] })
})

const running: RunningServer<http.Server | https.Server>[] = []
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()))
})

async function start(server: http.Server | https.Server, host: string): Promise<number> {
  const s = await listen(server, host)
  running.push(s)
  return s.port
}

/** One request over http or https (trusting the test CA) to `host`:`port`, the path sent as written. */
function request(
  secure: boolean,
  host: string,
  port: number,
  path = '/',
  headers: Record<string, string> = {},
): Promise<HttpReply> {
  const origin = `${secure ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`
  return httpRequest(origin, { path, headers, ...(secure ? { ca: tls.cert, servername: 'localhost' } : {}) })
}

function app(options: HttpsOnlyOptions = {}, trustProxy: unknown = false) {
  const { events, onEvent } = collectEvents()
  const a: Express = createTestApp(hsts(), httpsOnly({ onEvent, ...options }), (req, res, next) => {
    res.setHeader('x-seen-secure', String(req.secure))
    next()
  })
  a.set('trust proxy', trustProxy)
  return { app: a, events }
}

/** The same app over HTTPS (real TLS, a certificate generated for this run) and over plain HTTP. */
async function both(a: Express, host = '127.0.0.1'): Promise<{ httpsPort: number; httpPort: number }> {
  const httpsPort = await start(https.createServer({ cert: tls.cert, key: tls.key }, a), host)
  const httpPort = await start(http.createServer(a), host)
  return { httpsPort, httpPort }
}

const REQUIRED_OPENAI = { error: { message: 'HTTPS is required.', type: 'invalid_request_error', param: null, code: 'forbidden' } }

describe('httpsOnly: refuse', () => {
  it('serves HTTPS and refuses plain HTTP with 403 in the provider shape and an event', async () => {
    const { app: a, events } = app()
    const { httpsPort, httpPort } = await both(a)

    const ok = await request(true, '127.0.0.1', httpsPort, '/v1/chat/completions')
    expect(ok.status).toBe(200)
    expect(ok.headers['x-seen-secure']).toBe('true')
    expect(ok.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains')
    expect(events).toEqual([])

    const refused = await request(false, '127.0.0.1', httpPort, '/v1/chat/completions?api_key=should-not-be-logged')
    expect(refused.status).toBe(403)
    expect(refused.json).toEqual(REQUIRED_OPENAI)
    expect(refused.headers['cache-control']).toBe('no-store')
    expect(refused.headers['x-frame-options']).toBe('DENY')
    expect(refused.headers['x-seen-secure']).toBeUndefined()
    expect(events).toEqual([
      expect.objectContaining({
        event_type: 'security_violation',
        provider: 'openai',
        ip: '127.0.0.1',
        result: 'https_required',
        details: { method: 'GET', path: '/v1/chat/completions', protocol: 'http' },
      }),
    ])
    expect(JSON.stringify(events)).not.toContain('should-not-be-logged')
  })

  it('answers in the Anthropic shape on an Anthropic path', async () => {
    const { app: a } = app()
    const { httpPort } = await both(a)
    const r = await request(false, '127.0.0.1', httpPort, '/v1/messages')
    expect(r.status).toBe(403)
    expect(r.json).toEqual({ type: 'error', error: { type: 'permission_error', message: 'HTTPS is required.' } })
  })

  it('ignores a spoofed X-Forwarded-Proto when the proxy is not trusted', async () => {
    const { app: a, events } = app({}, false)
    const { httpPort } = await both(a)
    const r = await request(false, '127.0.0.1', httpPort, '/', { 'x-forwarded-proto': 'https' })
    expect(r.status).toBe(403)
    expect(events[0]).toMatchObject({ result: 'https_required' })
  })

  it('honours X-Forwarded-Proto from a trusted proxy, through req.secure', async () => {
    const { app: a, events } = app({}, 'loopback')
    const { httpPort } = await both(a)
    const forwardedHttps = await request(false, '127.0.0.1', httpPort, '/', { 'x-forwarded-proto': 'https' })
    expect(forwardedHttps.status).toBe(200)
    expect(forwardedHttps.headers['x-seen-secure']).toBe('true')
    const forwardedHttp = await request(false, '127.0.0.1', httpPort, '/', { 'x-forwarded-proto': 'http' })
    expect(forwardedHttp.status).toBe(403)
    expect(events).toHaveLength(1)
  })
})

describe('httpsOnly: redirect', () => {
  it('redirects with 308 to the same host and path on https, and serves the target over TLS', async () => {
    const { app: a, events } = app({ action: 'redirect' })
    const { httpsPort, httpPort } = await both(a)
    const r = await request(false, '127.0.0.1', httpPort, '/v1/models?limit=2')
    expect(r.status).toBe(308)
    expect(r.headers.location).toBe('https://127.0.0.1/v1/models?limit=2')
    expect(r.headers['cache-control']).toBe('no-store')
    expect(r.body).toBe('')
    expect(events).toEqual([expect.objectContaining({ result: 'https_redirect', details: { method: 'GET', path: '/v1/models', protocol: 'http' } })])
    const followed = await request(true, '127.0.0.1', httpsPort, '/v1/models?limit=2')
    expect(followed.status).toBe(200)
  })

  it.each<[HttpsOnlyOptions, Record<string, string>, string, number]>([
    [{ action: 'redirect', redirectStatus: 301 }, { host: 'gateway.example.com:8080' }, 'https://gateway.example.com/p?q=1', 301],
    [{ action: 'redirect', httpsPort: 8443 }, { host: 'gateway.example.com' }, 'https://gateway.example.com:8443/p?q=1', 308],
    [{ action: 'redirect', redirectHost: 'api.example.com:8443' }, { host: 'evil.example' }, 'https://api.example.com:8443/p?q=1', 308],
    [{ action: 'redirect' }, { host: '[::1]:8080' }, 'https://[::1]/p?q=1', 308],
  ])('%j with %j redirects to %s', async (options, headers, location, status) => {
    const { app: a } = app(options)
    const { httpPort } = await both(a)
    const r = await request(false, '127.0.0.1', httpPort, '/p?q=1', headers)
    expect(r.status).toBe(status)
    expect(r.headers.location).toBe(location)
  })

  it('refuses instead of redirecting to a host name that is not one', async () => {
    const { app: a, events } = app({ action: 'redirect' })
    const { httpPort } = await both(a)
    const r = await request(false, '127.0.0.1', httpPort, '/', { host: 'evil.example/@x' })
    expect(r.status).toBe(403)
    expect(r.headers.location).toBeUndefined()
    expect(r.json).toEqual(REQUIRED_OPENAI)
    expect(events[0]).toMatchObject({ result: 'https_required' })
  })

  it('never puts an absolute-form request target into the Location', async () => {
    const { app: a } = app({ action: 'redirect', redirectHost: 'gateway.example.com' })
    const { httpPort } = await both(a)
    const r = await request(false, '127.0.0.1', httpPort, 'http://evil.example/steal')
    expect(r.status).toBe(308)
    expect(r.headers.location).toBe('https://gateway.example.com/')
  })
})

const v6it = hasIpv6Loopback ? it : it.skip
describe('httpsOnly over IPv6', () => {
  v6it('serves HTTPS on [::1] and refuses plain HTTP there', async () => {
    const { app: a, events } = app()
    const { httpsPort, httpPort } = await both(a, '::1')
    const ok = await request(true, '::1', httpsPort, '/')
    expect(ok.status).toBe(200)
    expect(ok.headers['x-seen-secure']).toBe('true')
    const refused = await request(false, '::1', httpPort, '/')
    expect(refused.status).toBe(403)
    expect(refused.json).toEqual(REQUIRED_OPENAI)
    expect(events).toEqual([expect.objectContaining({ ip: '::1', result: 'https_required' })])
  })
})
