import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import express, { type Request, type RequestHandler, type Response, type Router } from 'express'
import {
  createFailureGuard,
  createMasker,
  emitSecurityEvent,
  gatehouseLocals,
  normalizeIp,
  type SecurityEvent,
  type SecurityEventInput,
} from '@gatehouse/core'
import { DASHBOARD_CSS, DASHBOARD_ICON, DASHBOARD_JS } from './assets'
import { StorageErrorCodes } from './errors'
import { html, type SafeHtml } from './html'
import { maskAll } from './rows'
import { PKG } from './options'
import {
  resolveDashboardConfig,
  type DashboardDenylistEntry,
  type DashboardFinding,
  type DashboardLimit,
  type DashboardOptions,
  type DashboardRefusals,
} from './dashboard-options'

/** The dashboard's Content-Security-Policy: nothing inline, nothing from anywhere else. */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

const SECURITY_HEADERS: ReadonlyArray<[string, string]> = [
  ['Content-Security-Policy', DASHBOARD_CSP],
  ['X-Frame-Options', 'DENY'],
  ['X-Content-Type-Options', 'nosniff'],
  ['Referrer-Policy', 'same-origin'],
  ['Cache-Control', 'no-store'],
  ['Cross-Origin-Opener-Policy', 'same-origin'],
  ['Cross-Origin-Resource-Policy', 'same-origin'],
]

interface Session {
  csrf: string
  expiresAt: number
}

const MAX_TRACKED_ADDRESSES = 10_000
const LOGIN_TOKEN_TTL_S = 600
const MAX_FORM_BYTES = 4096

const token = (): string => randomBytes(32).toString('base64url')
const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest()
/** Constant-time equality of two strings of any length. */
const same = (a: string, b: string): boolean => timingSafeEqual(digest(a), digest(b))

/** Every value of one cookie in the Cookie header (a name can appear more than once). */
function cookieValues(req: Request, name: string): string[] {
  const header = req.headers.cookie
  if (typeof header !== 'string') return []
  const out: string[] = []
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq === -1) continue
    if (part.slice(0, eq).trim() === name) out.push(part.slice(eq + 1).trim())
  }
  return out
}

const withTimeout = <T>(work: () => T | Promise<T>, ms: number): Promise<T> =>
  new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms}ms`)), ms)
    timer.unref()
    Promise.resolve()
      .then(work)
      .then(resolve, reject)
      .finally(() => clearTimeout(timer))
  })

/** A JSON-safe copy (Dates become ISO strings) so masking cannot lose anything. */
function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? 'null') as T
}

type Section<T> = { ok: true; value: T } | { ok: false; reason: string }

/**
 * The read-only security dashboard, an Express router to mount at `/v0/management/dashboard`. It
 * does its own authentication and shows nothing without the management key: a login form posts
 * the key, compared in constant time, and opens a server-side session (an httpOnly, SameSite=Strict,
 * Secure cookie). Every POST carries a CSRF token; every page is served with a strict CSP and all
 * data HTML-escaped and masked. Works with Express 4 and 5.
 */
export function dashboardRouter(options: DashboardOptions): Router {
  const config = resolveDashboardConfig(options)
  const mask = createMasker({ knownSecrets: [...config.knownSecrets, config.secretKey] })
  const sessions = new Map<string, Session>()
  const guard = createFailureGuard({
    maxFailures: config.maxLoginFailures,
    windowMs: config.loginFailureWindowMs,
    banMs: config.loginFailureWindowMs,
    globalBudget: 100,
    maxBuckets: MAX_TRACKED_ADDRESSES,
  })
  const prefix = config.secureCookies ? '__Secure-' : ''
  const SESSION_COOKIE = `${prefix}gatehouse_dashboard`
  const LOGIN_COOKIE = `${prefix}gatehouse_dashboard_login`

  const router = express.Router()
  const form = express.urlencoded({ extended: false, limit: MAX_FORM_BYTES, parameterLimit: 10 })

  const event = (req: Request, res: Response, input: Omit<SecurityEventInput, 'ip'>): void => {
    const requestId = gatehouseLocals(res).requestId
    emitSecurityEvent(
      config.onEvent,
      { ...input, ip: normalizeIp(req.ip ?? req.socket.remoteAddress), ...(requestId ? { request_id: requestId } : {}) },
      (err) => config.logger.error(`${PKG}: the dashboard onEvent handler threw`, { error: mask.text(String(err)) }),
    )
  }

  const base = (req: Request): string => req.baseUrl || ''
  const cookie = (req: Request, name: string, value: string, maxAgeS: number): string =>
    `${name}=${value}; Path=${base(req) || '/'}; Max-Age=${maxAgeS}; HttpOnly; SameSite=Strict${config.secureCookies ? '; Secure' : ''}`

  const sweep = (now: number): void => {
    for (const [id, s] of sessions) if (s.expiresAt <= now) sessions.delete(id)
  }

  const sessionOf = (req: Request): Session | undefined => {
    const now = Date.now()
    for (const id of cookieValues(req, SESSION_COOKIE)) {
      const s = sessions.get(id)
      if (!s) continue
      if (s.expiresAt > now) return s
      sessions.delete(id)
    }
    return undefined
  }

  const send = (res: Response, status: number, page: SafeHtml): void => {
    res.status(status).type('html').send(page.value)
  }

  const loginPage = (req: Request, res: Response, status: number, message?: string): void => {
    const t = token()
    res.append('Set-Cookie', cookie(req, LOGIN_COOKIE, t, LOGIN_TOKEN_TTL_S))
    send(res, status, page(base(req), 'Sign in', loginBody(base(req), t, message)))
  }

  // Headers on every response of the router, refusals and assets included.
  router.use(function dashboardHeaders(_req, res, next) {
    for (const [name, value] of SECURITY_HEADERS) res.setHeader(name, value)
    next()
  })

  router.get('/assets/dashboard.css', (_req, res) => {
    res.type('text/css; charset=utf-8').send(DASHBOARD_CSS)
  })
  router.get('/assets/dashboard.js', (_req, res) => {
    res.type('text/javascript; charset=utf-8').send(DASHBOARD_JS)
  })
  router.get('/assets/icon.svg', (_req, res) => {
    res.type('image/svg+xml').send(DASHBOARD_ICON)
  })

  /** Cross-site POSTs are refused before anything else: SameSite=Strict is the first line, this the second. */
  const sameOrigin: RequestHandler = function dashboardSameOrigin(req, res, next) {
    // A browser that sends Sec-Fetch-Site says where the form came from; otherwise the Origin,
    // when present, must be this host ("null", from a sandboxed or opaque origin, is refused).
    const site = req.get('sec-fetch-site')
    const origin = req.get('origin')
    let ok: boolean
    if (site !== undefined) ok = site === 'same-origin' || site === 'none'
    else if (origin === undefined) ok = true
    else {
      try {
        ok = new URL(origin).host === req.get('host')
      } catch {
        ok = false
      }
    }
    if (ok) {
      next()
      return
    }
    event(req, res, { event_type: 'security_violation', user_id: 'management', result: 'dashboard_cross_site_post' })
    send(res, 403, page(base(req), 'Refused', html`<main class="login"><h1>Refused</h1><p class="error">Cross-site form submissions are refused.</p></main>`))
  }

  const parseForm: RequestHandler = function dashboardForm(req, res, next) {
    form(req, res, (err?: unknown) => {
      if (err) {
        send(res, 400, page(base(req), 'Bad request', html`<main class="login"><h1>Bad request</h1><p class="error">The form could not be read.</p></main>`))
        return
      }
      next()
    })
  }

  const field = (req: Request, name: string): string => {
    const v = (req.body as Record<string, unknown> | undefined)?.[name]
    return typeof v === 'string' ? v : ''
  }

  router.post('/login', sameOrigin, parseForm, (req, res) => {
    const now = Date.now()
    sweep(now)
    const ip = normalizeIp(req.ip ?? req.socket.remoteAddress)
    const sent = field(req, 'csrf')
    const expected = cookieValues(req, LOGIN_COOKIE)
    if (sent === '' || !expected.some((v) => same(v, sent))) {
      event(req, res, { event_type: 'security_violation', user_id: 'management', result: 'dashboard_csrf_mismatch', details: { form: 'login' } })
      loginPage(req, res, 403, 'The sign-in form expired. Please try again.')
      return
    }
    // The right key always signs in: a refusal holds back wrong keys only, so nobody can lock the
    // operator out by failing from the same address (all of loopback counts as one).
    if (!same(field(req, 'key'), config.secretKey)) {
      const refusedMs = guard.bannedFor(ip)
      if (refusedMs > 0) {
        event(req, res, { event_type: 'security_violation', user_id: 'management', result: 'dashboard_login_refused', details: { reason: 'too many wrong keys' } })
        res.setHeader('Retry-After', String(Math.ceil(refusedMs / 1000)))
        loginPage(req, res, 429, 'Too many wrong keys from this address. Try again later.')
        return
      }
      guard.fail(ip)
      event(req, res, { event_type: 'auth_failure', result: 'dashboard_invalid_key', details: { component: 'dashboard' } })
      loginPage(req, res, 401, 'Wrong key.')
      return
    }
    if (sessions.size >= config.maxSessions) {
      const oldest = sessions.keys().next().value
      if (oldest !== undefined) sessions.delete(oldest)
    }
    const id = token()
    sessions.set(id, { csrf: token(), expiresAt: now + config.sessionTtlMs })
    res.append('Set-Cookie', cookie(req, SESSION_COOKIE, id, Math.floor(config.sessionTtlMs / 1000)))
    res.append('Set-Cookie', cookie(req, LOGIN_COOKIE, '', 0))
    event(req, res, { event_type: 'auth_success', user_id: 'management', result: 'dashboard_login' })
    res.redirect(303, `${base(req)}/`)
  })

  router.post('/logout', sameOrigin, parseForm, (req, res) => {
    const session = sessionOf(req)
    if (session && !same(field(req, 'csrf'), session.csrf)) {
      event(req, res, { event_type: 'security_violation', user_id: 'management', result: 'dashboard_csrf_mismatch', details: { form: 'logout' } })
      send(res, 403, page(base(req), 'Refused', html`<main class="login"><h1>Refused</h1><p class="error">The form expired; reload the dashboard and try again.</p></main>`))
      return
    }
    for (const id of cookieValues(req, SESSION_COOKIE)) sessions.delete(id)
    res.append('Set-Cookie', cookie(req, SESSION_COOKIE, '', 0))
    res.redirect(303, `${base(req)}/`)
  })

  router.get('/', (req, res, next) => {
    const session = sessionOf(req)
    if (!session) {
      loginPage(req, res, 200)
      return
    }
    render(session)
      .then((body) => send(res, 200, page(base(req), 'Security dashboard', body)))
      .catch(next)

    async function render(s: Session): Promise<SafeHtml> {
      const d = config.data
      const load = async <T>(name: string, fn: (() => T | Promise<T>) | undefined): Promise<Section<T>> => {
        if (!fn) return { ok: false, reason: 'not configured' }
        try {
          return { ok: true, value: maskAll(mask, plain(await withTimeout(fn, config.dataTimeoutMs))) }
        } catch (err) {
          config.logger.error(`${PKG}: the dashboard's ${name} provider failed`, {
            code: StorageErrorCodes.GH_STORAGE_DASHBOARD_DATA_FAILED,
            error: mask.text(err instanceof Error ? err.message : String(err)),
          })
          return { ok: false, reason: 'not available' }
        }
      }
      const [events, refused, deny, limits, doctor] = await Promise.all([
        load('recentEvents', d.recentEvents && (() => d.recentEvents!(config.recentLimit))),
        load('topRefused', d.topRefused),
        load('denylist', d.denylist),
        load('limits', d.limits),
        load('doctor', d.doctor),
      ])
      return dashboardBody(base(req), s.csrf, {
        events: events as Section<readonly SecurityEvent[]>,
        refused: refused as Section<DashboardRefusals>,
        deny: deny as Section<readonly DashboardDenylistEntry[]>,
        limits: limits as Section<readonly DashboardLimit[]>,
        doctor: doctor as Section<readonly DashboardFinding[]>,
        limit: config.recentLimit,
      })
    }
  })

  router.use((req, res) => {
    res.status(404).type('text/plain').send('Not found')
  })

  return router
}

// ---------------------------------------------------------------------------------------------
// Pages. Every interpolated value goes through html`` and is escaped.

function page(base: string, title: string, body: SafeHtml): SafeHtml {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>Gatehouse · ${title}</title>
<link rel="icon" href="${base}/assets/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="${base}/assets/dashboard.css">
<script src="${base}/assets/dashboard.js" defer></script>
</head>
<body>
${body}
</body>
</html>
`
}

function loginBody(base: string, csrf: string, message?: string): SafeHtml {
  return html`<main class="login">
<h1>Gatehouse security dashboard</h1>
<p>Sign in with the management key.</p>
${message ? html`<p class="error" role="alert" id="login-error">${message}</p>` : ''}
<form method="post" action="${base}/login" autocomplete="off">
<input type="hidden" name="csrf" value="${csrf}">
<label for="key">Management key</label>
<input type="password" id="key" name="key" required autofocus autocomplete="off" spellcheck="false">
<button type="submit">Sign in</button>
</form>
</main>`
}

const dateText = (v: unknown): string => {
  if (v instanceof Date) return Number.isFinite(v.getTime()) ? v.toISOString() : ''
  if (typeof v === 'string' && Number.isFinite(Date.parse(v))) return new Date(Date.parse(v)).toISOString()
  return typeof v === 'string' ? v : ''
}
const time = (v: unknown): SafeHtml => {
  const t = dateText(v)
  return t === '' ? html`<span class="empty">–</span>` : html`<time datetime="${t}">${t.replace('T', ' ').replace(/\.\d{3}Z$/, 'Z')}</time>`
}
const SEVERITIES = new Set(['high', 'medium', 'low', 'info'])
const short = (v: unknown, max: number): string => {
  let s: string
  try {
    s = typeof v === 'string' ? v : (JSON.stringify(v) ?? '')
  } catch {
    s = '[unprintable]'
  }
  return s.length > max ? `${s.slice(0, max - 1)}…` : s
}
const num = (v: unknown): string => (typeof v === 'number' && Number.isFinite(v) ? v.toLocaleString('en-US') : '')

function section<T>(id: string, title: string, data: Section<T>, body: (value: T) => SafeHtml, extra?: SafeHtml): SafeHtml {
  return html`<section id="${id}" aria-labelledby="${id}-title">
<h2 id="${id}-title">${title}</h2>
${data.ok ? [extra ?? '', body(data.value)] : html`<p class="unavailable">${data.reason === 'not configured' ? 'Not configured.' : 'Not available right now (see the gateway log).'}</p>`}
</section>`
}

function table(head: readonly string[], rows: SafeHtml[], empty: string): SafeHtml {
  if (rows.length === 0) return html`<p class="empty">${empty}</p>`
  return html`<table><thead><tr>${head.map((h) => html`<th scope="col">${h}</th>`)}</tr></thead><tbody>${rows}</tbody></table>`
}

interface DashboardView {
  events: Section<readonly SecurityEvent[]>
  refused: Section<DashboardRefusals>
  deny: Section<readonly DashboardDenylistEntry[]>
  limits: Section<readonly DashboardLimit[]>
  doctor: Section<readonly DashboardFinding[]>
  limit: number
}

const list = <T>(v: unknown): T[] => (Array.isArray(v) ? (v as T[]) : [])

function dashboardBody(base: string, csrf: string, view: DashboardView): SafeHtml {
  const now = new Date().toISOString()
  return html`<header>
<h1>Gatehouse security dashboard</h1>
<p class="meta">Read-only · generated ${time(now)}</p>
<label><input type="checkbox" id="auto-refresh"> Refresh every 30 s</label>
<form method="post" action="${base}/logout"><input type="hidden" name="csrf" value="${csrf}"><button type="submit">Sign out</button></form>
</header>
<main>
${section('doctor', 'Doctor findings', view.doctor, (findings) =>
  table(
    ['Severity', 'Finding', 'Fix'],
    list<DashboardFinding>(findings).map((f) => {
      const sev = SEVERITIES.has(String(f.severity)) ? String(f.severity) : 'other'
      return html`<tr><td><span class="sev sev-${sev}">${f.severity}</span></td><td>${f.message}${f.id ? html` <code>${f.id}</code>` : ''}</td><td>${f.fix ?? ''}</td></tr>`
    }),
    'No findings.',
  ),
)}
${section(
  'events',
  `Recent security events (last ${view.limit})`,
  view.events,
  (events) =>
    table(
      ['Time', 'Event', 'Result', 'Provider', 'Key', 'Address', 'Request', 'Details'],
      list<SecurityEvent>(events).map(
        (e) => html`<tr>
<td>${time(e.timestamp)}</td>
<td class="t-${String(e.event_type).replace(/[^a-z_]/g, '')}">${e.event_type}</td>
<td>${e.result ?? ''}</td>
<td>${e.provider ?? ''}</td>
<td class="mono">${e.user_id ?? ''}</td>
<td class="mono">${e.ip ?? ''}</td>
<td class="mono">${e.request_id ?? ''}</td>
<td class="mono details">${e.details === undefined ? '' : short(e.details, 300)}</td>
</tr>`,
      ),
      'No events yet.',
    ),
  html`<input type="search" id="event-filter" placeholder="Filter events" aria-label="Filter events">`,
)}
<div class="grid">
${section('refused-ips', 'Top refused addresses', view.refused, (r) =>
  table(
    ['Address', 'Refusals'],
    list<{ ip: string; count: number }>(r.ips).map((x) => html`<tr><td class="mono">${x.ip}</td><td class="num">${num(x.count)}</td></tr>`),
    'No refusals.',
  ),
)}
${section('refused-keys', 'Top refused keys', view.refused, (r) =>
  table(
    ['Key', 'Refusals'],
    list<{ key_id: string; count: number }>(r.keys).map((x) => html`<tr><td class="mono">${x.key_id}</td><td class="num">${num(x.count)}</td></tr>`),
    'No refusals.',
  ),
)}
</div>
${section('denylist', 'Denylist', view.deny, (entries) =>
  table(
    ['Address or network', 'Reason', 'Added', 'Expires'],
    list<DashboardDenylistEntry>(entries).map(
      (x) => html`<tr><td class="mono">${x.ip}</td><td>${x.reason ?? ''}</td><td>${time(x.addedAt)}</td><td>${x.expiresAt ? time(x.expiresAt) : 'never'}</td></tr>`,
    ),
    'The denylist is empty.',
  ),
)}
${section('limits', 'Limits and quota use', view.limits, (limits) =>
  table(
    ['Limit', 'Used', 'Limit', 'Remaining', 'Resets'],
    list<DashboardLimit>(limits).map((x) => {
      const max = typeof x.limit === 'number' && x.limit > 0 ? x.limit : undefined
      const meter =
        max !== undefined && typeof x.used === 'number'
          ? html` <meter min="0" max="${max}" low="${max * 0.75}" high="${max * 0.9}" optimum="0" value="${Math.min(max, Math.max(0, x.used))}"></meter>`
          : ''
      return html`<tr><td>${x.name}</td><td class="num">${num(x.used)}${meter}</td><td class="num">${typeof x.limit === 'number' ? num(x.limit) : x.limit}</td><td class="num">${num(x.remaining)}</td><td>${x.resetsAt ? time(x.resetsAt) : ''}</td></tr>`
    }),
    'No limits configured.',
  ),
)}
</main>`
}
