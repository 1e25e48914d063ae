import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import express, { type RequestHandler } from 'express'
import { chromium, type Browser } from 'playwright-core'
import { emitSecurityEvent, gatehouseLocals, normalizeIp, type SecurityEvent } from '@gatehouse/core'
import { listen, type RunningServer } from '@gatehouse/testing'
import { createEventBuffer, dashboardRouter } from '@gatehouse/dashboard'

/**
 * The dashboard in a real browser: Debian's chromium driven by playwright-core, against a small
 * app whose requests emit real events into the dashboard's event buffer. (That the same events
 * reach PostgreSQL is storage's test, and the gateway's, which wires both to one event stream.)
 */
const CHROMIUM = '/usr/bin/chromium'
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
]
const BASE = '/v0/management/dashboard'
const REPO = join(__dirname, '..', '..', '..')
const ARTIFACT = join(REPO, 'test-artifacts', 'dashboard.png')
const MANAGEMENT_KEY = randomBytes(32).toString('base64url')
const XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'

const keyId = (key: string): string => `key_${createHash('sha256').update(key).digest('hex').slice(0, 8)}`

let server: RunningServer
let browser: Browser
const buffer = createEventBuffer({ size: 200 })
const goodKey = `gate_live_${randomBytes(32).toString('base64url')}`

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get update && apt-get install -y chromium`)
  const emit = (e: SecurityEvent): void => buffer.record(e)

  const app = express()
  app.disable('x-powered-by')
  app.set('trust proxy', 'loopback')
  let n = 0
  app.use((req, res, next) => {
    gatehouseLocals(res).requestId = `req-${(++n).toString().padStart(4, '0')}-${randomBytes(3).toString('hex')}`
    next()
  })
  app.use(
    BASE,
    dashboardRouter({
      secretKey: MANAGEMENT_KEY,
      secureCookies: false,
      onEvent: emit,
      data: {
        recentEvents: (limit) => buffer.recentEvents(limit),
        topRefused: () => buffer.topRefused(),
        denylist: () => [
          { ip: '203.0.113.0/24', reason: 'honeytoken used', addedAt: new Date(Date.now() - 3_600_000), expiresAt: new Date(Date.now() + 20 * 3_600_000) },
          { ip: '198.51.100.23', reason: 'High auth failure rate', addedAt: new Date(Date.now() - 600_000), expiresAt: null },
        ],
        limits: () => [
          { name: 'claude requests per minute', limit: 100, used: 37, remaining: 63, resetsAt: new Date(Date.now() + 40_000) },
          { name: 'claude tokens per minute', limit: 100_000, used: 91_200, remaining: 8_800, resetsAt: new Date(Date.now() + 40_000) },
          { name: `${keyId(goodKey)} monthly quota`, limit: 1_000_000, used: 412_345, remaining: 587_655, resetsAt: '2026-12-01T00:00:00Z' },
        ],
        doctor: () => [
          { severity: 'high', id: 'storage.tls', message: 'storage.url does not require TLS (sslmode=require)', fix: 'append ?sslmode=require to storage.url' },
          { severity: 'medium', id: 'management.allow_remote', message: 'The management API accepts remote callers', fix: 'set management.allow_remote: false' },
          { severity: 'low', id: 'metrics.host', message: 'Metrics listen on 0.0.0.0', fix: 'set metrics.host: 127.0.0.1' },
        ],
      },
    }),
  )
  // A stand-in for the gateway's client-auth layer and access log: every request is an event.
  const gateway: RequestHandler = (req, res) => {
    const presented = req.get('x-api-key')
    const base = { provider: 'claude', ip: normalizeIp(req.ip), request_id: gatehouseLocals(res).requestId! }
    if (presented !== goodKey) {
      emitSecurityEvent(emit, {
        ...base,
        event_type: 'auth_failure',
        ...(presented ? { user_id: keyId(presented) } : {}),
        result: presented ? 'invalid_key' : 'missing_key',
        details: { user_agent: req.get('user-agent') ?? '' },
      })
      res.status(401).json({ type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } })
      return
    }
    emitSecurityEvent(emit, {
      ...base,
      event_type: 'provider_request',
      user_id: keyId(presented),
      result: 'success',
      details: { method: req.method, path: req.originalUrl, status: 200, duration_ms: 812.4, input_tokens: 1520, output_tokens: 388 },
    })
    res.json({ ok: true })
  }
  app.use('/v1', gateway)
  server = await listen(app)
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS })
}, 30_000)

afterAll(async () => {
  await browser?.close()
  await server?.close()
})

/** Real requests to the test gateway. */
async function call(key: string | undefined, from: string, userAgent = 'curl/8.5.0'): Promise<{ status: number; requestId: string }> {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': userAgent, 'x-forwarded-for': from }
  if (key) headers['x-api-key'] = key
  const res = await fetch(`${server.url}/v1/messages`, { method: 'POST', headers, body: '{}' })
  await res.arrayBuffer()
  const last = buffer.recentEvents(1)[0]!
  return { status: res.status, requestId: last.request_id! }
}

describe('the dashboard in headless Chromium', () => {
  it('shows nothing with a wrong key, then the event a request caused, escaped, under the CSP', async () => {
    // Traffic: good calls, wrong keys from a few addresses, and one with markup in its User-Agent.
    for (const from of ['192.0.2.10', '192.0.2.11']) expect((await call(goodKey, from)).status).toBe(200)
    for (let i = 0; i < 4; i++) await call(`gate_live_${randomBytes(32).toString('base64url')}`, '198.51.100.23')
    await call(undefined, '203.0.113.9')
    const caused = await call(`gate_live_${randomBytes(32).toString('base64url')}`, '203.0.113.50', XSS)
    expect(caused.status).toBe(401)

    const context = await browser.newContext({ viewport: { width: 1360, height: 900 } })
    const page = await context.newPage()
    const problems: string[] = []
    page.on('console', (m) => {
      // The wrong-key page itself is a 401; anything else (a CSP refusal, a missing asset) is a problem.
      if ((m.type() === 'error' || /Content Security Policy|Refused to/i.test(m.text())) && !/status of 401/.test(m.text())) {
        problems.push(m.text())
      }
    })
    page.on('pageerror', (e) => problems.push(e.message))

    // Signed out: only the form.
    await page.goto(`${server.url}${BASE}`)
    await page.waitForSelector('form[action$="/login"]')
    expect(await page.content()).not.toContain(caused.requestId)

    // A wrong key: the form again, and still no data.
    await page.fill('#key', `${MANAGEMENT_KEY.slice(0, -2)}zz`)
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')])
    expect(await page.textContent('#login-error')).toBe('Wrong key.')
    const refused = await page.content()
    for (const marker of [caused.requestId, '203.0.113.50', '198.51.100.23', 'tokens per minute', 'storage.tls']) {
      expect(refused).not.toContain(marker)
    }
    expect(await page.$('#events')).toBeNull()

    // The right key: the dashboard, with the event the request caused.
    await page.fill('#key', MANAGEMENT_KEY)
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')])
    await page.waitForSelector('#events table')
    const row = page.locator('#events tbody tr', { hasText: caused.requestId })
    await expect(row.count()).resolves.toBe(1)
    const rowText = (await row.innerText()).replace(/\s+/g, ' ')
    expect(rowText).toContain('auth_failure')
    expect(rowText).toContain('invalid_key')
    expect(rowText).toContain('203.0.113.50')
    // The markup arrived as text: shown, never run.
    expect(rowText).toContain('<script>window.__pwned = 1</script>')
    expect(await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned)).toBeUndefined()
    expect(await page.locator('#events img').count()).toBe(0)
    // The top refusals come from the same events.
    expect(await page.locator('#refused-ips tbody tr').first().innerText()).toMatch(/198\.51\.100\.23\s+4/)

    // Our own script ran under the CSP (it marks the page, and the filter works).
    expect(await page.getAttribute('html', 'data-script')).toBe('ready')
    await page.fill('#event-filter', caused.requestId)
    await expect(page.locator('#events tbody tr:visible').count()).resolves.toBe(1)
    await page.fill('#event-filter', '')

    // The session cookie is out of the page's reach.
    expect(await page.evaluate(() => (globalThis as unknown as { document: { cookie: string } }).document.cookie)).toBe('')
    const cookies = await context.cookies()
    expect(cookies).toEqual([expect.objectContaining({ name: 'gatehouse_dashboard', httpOnly: true, sameSite: 'Strict', path: BASE })])
    expect(problems).toEqual([])

    await page.locator('#event-filter').blur()
    mkdirSync(join(REPO, 'test-artifacts'), { recursive: true })
    await page.screenshot({ path: ARTIFACT, fullPage: true })
    expect(existsSync(ARTIFACT) && statSync(ARTIFACT).size > 10_000).toBe(true)

    // Signing out ends it.
    await Promise.all([page.waitForNavigation(), page.click('header button[type=submit]')])
    await page.waitForSelector('#key')
    expect(await page.content()).not.toContain(caused.requestId)
    await context.close()
  })
})
