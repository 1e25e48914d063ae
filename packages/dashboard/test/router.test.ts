import { randomBytes } from 'node:crypto'
import express, { type Express } from 'express'
import request, { type Response } from 'supertest'
import type { SecurityEvent } from '@gatehouse/core'
import { collectEvents, fakeClock, recordingLogger, type FakeClock } from '@gatehouse/testing'
import { DASHBOARD_CSP, dashboardRouter, type DashboardData, type DashboardOptions } from '@gatehouse/dashboard'

const BASE = '/v0/management/dashboard'
const KEY = randomBytes(32).toString('base64url')
const XSS = '<script>alert(1)</script>'

const EVENT: SecurityEvent = {
  timestamp: '2026-02-19T23:00:00.000Z',
  event_type: 'auth_failure',
  provider: 'claude',
  user_id: 'key_3f9a12bc',
  ip: '198.51.100.77',
  request_id: 'req-marker-7f3a',
  result: `invalid_key${XSS}`,
  details: { user_agent: `"><img src=x onerror=alert(1)>${XSS}` },
}

const fullData = (counter = { calls: 0 }): DashboardData => {
  const data = {
    recentEvents: (limit: number) => {
      counter.calls++
      return [EVENT].slice(0, limit)
    },
    topRefused: () => ({ ips: [{ ip: '198.51.100.77', count: 42 }], keys: [{ key_id: `key_${XSS}`, count: 7 }] }),
    denylist: async () => [{ ip: '203.0.113.0/24', reason: `scanner ${XSS}`, addedAt: new Date('2026-02-19T22:00:00Z'), expiresAt: null }],
    limits: () => [{ name: `claude tokens per minute ${XSS}`, limit: 100_000, used: 91_500, remaining: 8_500, resetsAt: '2026-02-19T23:01:00Z' }],
    doctor: () => [{ severity: 'high', id: 'tls-off', message: `TLS is off ${XSS}`, fix: 'set server.tls.enabled' }],
  }
  return data
}

function app(overrides: Partial<DashboardOptions> = {}): Express {
  const a = express()
  a.disable('x-powered-by')
  a.use(BASE, dashboardRouter({ secretKey: KEY, data: fullData(), secureCookies: false, ...overrides }))
  return a
}

const setCookies = (res: Response): string[] => {
  const h = res.headers['set-cookie'] as unknown
  return Array.isArray(h) ? (h as string[]) : typeof h === 'string' ? [h] : []
}
const cookiePair = (res: Response, name: string): string | undefined =>
  setCookies(res)
    .map((c) => c.split(';')[0]!)
    .find((c) => c.startsWith(`${name}=`))
const csrfOf = (text: string): string => /name="csrf" value="([^"]+)"/.exec(text)![1]!

/** GET the login page, then POST the key with the form's token. */
async function login(a: Express, key = KEY, extra: Record<string, string> = {}): Promise<Response> {
  const page = await request(a).get(`${BASE}/`)
  const loginCookie = cookiePair(page, 'gatehouse_dashboard_login')!
  return request(a)
    .post(`${BASE}/login`)
    .set('Cookie', loginCookie)
    .set(extra)
    .type('form')
    .send({ csrf: csrfOf(page.text), key })
}

async function session(a: Express): Promise<{ cookie: string; page: Response }> {
  const res = await login(a)
  expect(res.status).toBe(303)
  const cookie = cookiePair(res, 'gatehouse_dashboard')!
  const page = await request(a).get(`${BASE}/`).set('Cookie', cookie)
  return { cookie, page }
}

const expectNoData = (text: string): void => {
  for (const marker of ['req-marker-7f3a', '198.51.100.77', 'key_3f9a12bc', '203.0.113.0/24', 'TLS is off', 'tokens per minute']) {
    expect(text).not.toContain(marker)
  }
}

const expectSecurityHeaders = (res: Response): void => {
  expect(res.headers['content-security-policy']).toBe(
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  )
  expect(res.headers['x-frame-options']).toBe('DENY')
  expect(res.headers['x-content-type-options']).toBe('nosniff')
  expect(res.headers['cache-control']).toBe('no-store')
  expect(res.headers['referrer-policy']).toBe('same-origin')
}

describe('dashboardRouter: signing in', () => {
  it('shows only the sign-in form without a session, and calls no data provider', async () => {
    const counter = { calls: 0 }
    const res = await request(app({ data: fullData(counter) })).get(`${BASE}/`)
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8')
    expectSecurityHeaders(res)
    expect(res.text).toContain(`<form method="post" action="${BASE}/login" autocomplete="off">`)
    expect(res.text).toContain('type="password"')
    expectNoData(res.text)
    expect(counter.calls).toBe(0)
    const [c] = setCookies(res)
    expect(c).toMatch(new RegExp(`^gatehouse_dashboard_login=[A-Za-z0-9_-]{43}; Path=${BASE}; Max-Age=600; HttpOnly; SameSite=Strict$`))
    // The path without a trailing slash is the same page.
    expect((await request(app()).get(BASE)).text).toContain('Sign in with the management key')
  })

  it('answers a wrong key with 401, the form again, no data, and an auth_failure event', async () => {
    const { events, onEvent } = collectEvents()
    const counter = { calls: 0 }
    const res = await login(app({ onEvent, data: fullData(counter) }), `${KEY.slice(0, -1)}x`)
    expect(res.status).toBe(401)
    expectSecurityHeaders(res)
    expect(res.text).toContain('Wrong key.')
    expectNoData(res.text)
    expect(counter.calls).toBe(0)
    expect(cookiePair(res, 'gatehouse_dashboard')).toBeUndefined()
    expect(events).toEqual([
      expect.objectContaining({ event_type: 'auth_failure', result: 'dashboard_invalid_key', ip: '127.0.0.1', details: { component: 'dashboard' } }),
    ])
    expect(JSON.stringify(events)).not.toContain(KEY.slice(0, 20))
  })

  it('refuses a sign-in without the form token (403, security_violation)', async () => {
    const { events, onEvent } = collectEvents()
    const a = app({ onEvent })
    const noCookie = await request(a).post(`${BASE}/login`).type('form').send({ csrf: 'x', key: KEY })
    expect(noCookie.status).toBe(403)
    expect(noCookie.text).toContain('The sign-in form expired')
    const page = await request(a).get(`${BASE}/`)
    const wrong = await request(a)
      .post(`${BASE}/login`)
      .set('Cookie', cookiePair(page, 'gatehouse_dashboard_login')!)
      .type('form')
      .send({ csrf: 'A'.repeat(43), key: KEY })
    expect(wrong.status).toBe(403)
    expect(cookiePair(wrong, 'gatehouse_dashboard')).toBeUndefined()
    expect(events.map((e) => [e.event_type, e.result])).toEqual([
      ['security_violation', 'dashboard_csrf_mismatch'],
      ['security_violation', 'dashboard_csrf_mismatch'],
    ])
  })

  it.each([
    [{ Origin: 'https://evil.example' }],
    [{ Origin: 'null' }],
    [{ Origin: 'http://127.0.0.1', 'Sec-Fetch-Site': 'cross-site' }],
    [{ 'Sec-Fetch-Site': 'cross-site' }],
    [{ 'Sec-Fetch-Site': 'same-site' }],
  ])('refuses a cross-site sign-in %j even with the right key', async (headers) => {
    const { events, onEvent } = collectEvents()
    const res = await login(app({ onEvent }), KEY, headers)
    expect(res.status).toBe(403)
    expect(res.text).toContain('Cross-site form submissions are refused.')
    expect(cookiePair(res, 'gatehouse_dashboard')).toBeUndefined()
    expect(events).toEqual([expect.objectContaining({ event_type: 'security_violation', result: 'dashboard_cross_site_post', user_id: 'management' })])
  })

  it('opens a session with the right key: 303, an httpOnly SameSite=Strict cookie, an auth_success event', async () => {
    const { events, onEvent } = collectEvents()
    const res = await login(app({ onEvent }), KEY, { Origin: 'http://127.0.0.1', Host: '127.0.0.1', 'Sec-Fetch-Site': 'same-origin' })
    expect(res.status).toBe(303)
    expect(res.headers.location).toBe(`${BASE}/`)
    const cookies = setCookies(res)
    expect(cookies).toContainEqual(expect.stringMatching(new RegExp(`^gatehouse_dashboard=[A-Za-z0-9_-]{43}; Path=${BASE}; Max-Age=3600; HttpOnly; SameSite=Strict$`)))
    expect(cookies).toContainEqual(`gatehouse_dashboard_login=; Path=${BASE}; Max-Age=0; HttpOnly; SameSite=Strict`)
    expect(events).toEqual([expect.objectContaining({ event_type: 'auth_success', user_id: 'management', result: 'dashboard_login' })])
  })

  it('marks the cookies Secure and __Secure- prefixed when secureCookies is on (the default)', async () => {
    const a = express()
    a.use(BASE, dashboardRouter({ secretKey: KEY, data: fullData() }))
    const page = await request(a).get(`${BASE}/`)
    const loginCookie = setCookies(page)[0]!
    expect(loginCookie).toMatch(/^__Secure-gatehouse_dashboard_login=[^;]+; Path=\/v0\/management\/dashboard; Max-Age=600; HttpOnly; SameSite=Strict; Secure$/)
    const res = await request(a)
      .post(`${BASE}/login`)
      .set('Cookie', loginCookie.split(';')[0]!)
      .type('form')
      .send({ csrf: csrfOf(page.text), key: KEY })
    expect(res.status).toBe(303)
    expect(setCookies(res)[0]).toMatch(/^__Secure-gatehouse_dashboard=[A-Za-z0-9_-]{43}; Path=\/v0\/management\/dashboard; Max-Age=3600; HttpOnly; SameSite=Strict; Secure$/)
  })

  it('refuses wrong keys from an address with 429 after maxLoginFailures, and still signs in the right key', async () => {
    const { events, onEvent } = collectEvents()
    const a = app({ onEvent, maxLoginFailures: 3 })
    for (let i = 0; i < 3; i++) expect((await login(a, 'wrong-key')).status).toBe(401)
    const res = await login(a, 'wrong-key')
    expect(res.status).toBe(429)
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(800)
    expect(res.text).toContain('Too many wrong keys')
    expect(cookiePair(res, 'gatehouse_dashboard')).toBeUndefined()
    const right = await login(a)
    expect(right.status).toBe(303)
    expect(cookiePair(right, 'gatehouse_dashboard')).toBeDefined()
    expect(events.map((e) => e.result)).toEqual([
      'dashboard_invalid_key',
      'dashboard_invalid_key',
      'dashboard_invalid_key',
      'dashboard_login_refused',
      'dashboard_login',
    ])
  })

  it('refuses a form too large to be a sign-in', async () => {
    const page = await request(app()).get(`${BASE}/`)
    const res = await request(app())
      .post(`${BASE}/login`)
      .set('Cookie', cookiePair(page, 'gatehouse_dashboard_login')!)
      .type('form')
      .send({ csrf: csrfOf(page.text), key: 'k'.repeat(10_000) })
    expect(res.status).toBe(400)
    expectNoData(res.text)
  })
})

describe('dashboardRouter: what a session shows', () => {
  it('shows events, refusals, denylist, limits and doctor findings, every value escaped', async () => {
    const { page } = await session(app())
    expect(page.status).toBe(200)
    expectSecurityHeaders(page)
    const text = page.text
    for (const shown of ['req-marker-7f3a', '198.51.100.77', 'key_3f9a12bc', '203.0.113.0/24', 'never', '91,500', '100,000', 'set server.tls.enabled']) {
      expect(text).toContain(shown)
    }
    expect(text).toContain('<time datetime="2026-02-19T23:00:00.000Z">2026-02-19 23:00:00Z</time>')
    expect(text).toContain('invalid_key&lt;script&gt;alert(1)&lt;/script&gt;')
    expect(text).toContain('TLS is off &lt;script&gt;')
    expect(text).toContain('key_&lt;script&gt;')
    expect(text).toContain('<meter min="0" max="100000"')
    expect(text).toContain('<span class="sev sev-high">high</span>')
    // No markup from the data, no inline script, style or handler anywhere.
    expect(text).not.toContain(XSS)
    expect(text).not.toContain('<img')
    expect(text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/)
    const tags = text.match(/<[a-z][^>]*>/gi) ?? []
    expect(tags.length).toBeGreaterThan(50)
    expect(tags.filter((t) => /^<style|\sstyle=|\son[a-z]+=|javascript:/i.test(t))).toEqual([])
    expect(text.match(/<script [^>]*>/g)).toEqual([`<script src="${BASE}/assets/dashboard.js" defer>`])
  })

  it('masks secrets in what it shows, the management key included', async () => {
    const leaked = `sk-ant-api03-${randomBytes(30).toString('base64url')}`
    const ev: SecurityEvent = { ...EVENT, details: { note: `leaked ${leaked}`, also: KEY, [leaked]: 'as a key' } }
    const { page } = await session(app({ data: { recentEvents: () => [ev] } }))
    expect(page.text).toContain('sk-ant-****')
    expect(page.text).not.toContain(leaked)
    expect(page.text).not.toContain(KEY)
    expect(page.text).toContain('Not configured.')
  })

  it('shows "not available" for a failing or slow provider, logs it masked, and still shows the rest', async () => {
    const logger = recordingLogger()
    const secret = `sk-ant-api03-${randomBytes(30).toString('base64url')}`
    const data = fullData()
    const { page } = await session(
      app({
        logger,
        dataTimeout: '1s',
        data: {
          ...data,
          doctor: () => {
            throw new Error(`doctor failed with ${secret}`)
          },
          limits: () => new Promise(() => undefined),
        },
      }),
    )
    expect(page.status).toBe(200)
    expect(page.text.match(/Not available right now/g)).toHaveLength(2)
    expect(page.text).toContain('req-marker-7f3a')
    const errors = logger.calls.filter((c) => c.meta?.code === 'GH_DASHBOARD_DATA_FAILED')
    expect(errors.map((c) => c.message)).toEqual([
      "@gatehouse/dashboard: the dashboard's doctor provider failed",
      "@gatehouse/dashboard: the dashboard's limits provider failed",
    ])
    expect(errors[1]!.meta?.error).toBe('no answer within 1000ms')
    expect(JSON.stringify(logger.calls)).not.toContain(secret)
    expect(JSON.stringify(logger.calls)).toContain('sk-ant-****')
  })

  it('serves its own script and style sheet, and 404 elsewhere, with the same headers', async () => {
    const a = app()
    const css = await request(a).get(`${BASE}/assets/dashboard.css`)
    expect(css.status).toBe(200)
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8')
    expectSecurityHeaders(css)
    const js = await request(a).get(`${BASE}/assets/dashboard.js`)
    expect(js.status).toBe(200)
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8')
    expect(js.text).not.toMatch(/innerHTML|eval\(|fetch\(|https?:\/\//)
    const icon = await request(a).get(`${BASE}/assets/icon.svg`)
    expect(icon.status).toBe(200)
    expect(icon.headers['content-type']).toBe('image/svg+xml; charset=utf-8')
    const missing = await request(a).get(`${BASE}/data.json`)
    expect(missing.status).toBe(404)
    expectSecurityHeaders(missing)
    expect(DASHBOARD_CSP).toBe(missing.headers['content-security-policy'])
  })
})

describe('dashboardRouter: sessions', () => {
  let clock: FakeClock | undefined
  afterEach(() => clock?.restore())

  it('signs out only with the session’s CSRF token', async () => {
    const { events, onEvent } = collectEvents()
    const a = app({ onEvent })
    const { cookie, page } = await session(a)
    const forged = await request(a).post(`${BASE}/logout`).set('Cookie', cookie).type('form').send({ csrf: 'nope' })
    expect(forged.status).toBe(403)
    expect(events.at(-1)).toMatchObject({ event_type: 'security_violation', result: 'dashboard_csrf_mismatch', details: { form: 'logout' } })
    expect((await request(a).get(`${BASE}/`).set('Cookie', cookie)).text).toContain('req-marker-7f3a')

    const out = await request(a).post(`${BASE}/logout`).set('Cookie', cookie).type('form').send({ csrf: csrfOf(page.text) })
    expect(out.status).toBe(303)
    expect(setCookies(out)).toContainEqual(`gatehouse_dashboard=; Path=${BASE}; Max-Age=0; HttpOnly; SameSite=Strict`)
    const after = await request(a).get(`${BASE}/`).set('Cookie', cookie)
    expect(after.text).toContain('Sign in with the management key')
    expectNoData(after.text)
  })

  it('ignores a forged or unknown session cookie', async () => {
    const res = await request(app()).get(`${BASE}/`).set('Cookie', `gatehouse_dashboard=${randomBytes(32).toString('base64url')}`)
    expect(res.text).toContain('Sign in with the management key')
    expectNoData(res.text)
  })

  it('ends a session after sessionTtl', async () => {
    clock = fakeClock({ timers: false }) // the TTL is a time check on each request
    const a = app({ sessionTtl: '1s' })
    const { cookie, page } = await session(a)
    expect(page.text).toContain('req-marker-7f3a')
    await clock.advance(1000)
    const later = await request(a).get(`${BASE}/`).set('Cookie', cookie)
    expectNoData(later.text)
  })

  it('ends the oldest session past maxSessions', async () => {
    const a = app({ maxSessions: 2 })
    const first = await session(a)
    await session(a)
    await session(a)
    expectNoData((await request(a).get(`${BASE}/`).set('Cookie', first.cookie)).text)
  })
})
