import express, { type Request, type RequestHandler, type Response, type Router } from 'express'
import { createFailureGuard, normalizeIp, type SecurityEventInput } from '@gatehouse/core'
import type { DashboardConfig } from './options'
import type { SafeHtml } from './html'
import { messagePage } from './pages'
import { base, cookieValues, same, type Cookies, type Sessions } from './session'

const MAX_TRACKED_ADDRESSES = 10_000
const MAX_FORM_BYTES = 4096

/** What the sign-in and sign-out routes share with the router. */
export interface LoginContext {
  config: DashboardConfig
  cookies: Cookies
  sessions: Sessions
  /** Emit a security event about this request (`ip` and `request_id` added). */
  event(req: Request, res: Response, input: Omit<SecurityEventInput, 'ip'>): void
  send(res: Response, status: number, page: SafeHtml): void
  /** The sign-in form with a fresh form token, and an optional message. */
  loginPage(req: Request, res: Response, status: number, message?: string): void
}

/** Cross-site POSTs are refused before anything else: SameSite=Strict is the first line, this the second. */
function sameOrigin(ctx: LoginContext): RequestHandler {
  return function dashboardSameOrigin(req, res, next) {
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
    ctx.event(req, res, { event_type: 'security_violation', user_id: 'management', result: 'dashboard_cross_site_post' })
    ctx.send(res, 403, messagePage(base(req), 'Refused', 'Cross-site form submissions are refused.'))
  }
}

function parseForm(ctx: LoginContext): RequestHandler {
  const form = express.urlencoded({ extended: false, limit: MAX_FORM_BYTES, parameterLimit: 10 })
  return function dashboardForm(req, res, next) {
    form(req, res, (err?: unknown) => {
      if (err) {
        ctx.send(res, 400, messagePage(base(req), 'Bad request', 'The form could not be read.'))
        return
      }
      next()
    })
  }
}

const field = (req: Request, name: string): string => {
  const v = (req.body as Record<string, unknown> | undefined)?.[name]
  return typeof v === 'string' ? v : ''
}

/** `POST /login` (the key, compared in constant time, opens a session) and `POST /logout`. */
export function mountLogin(router: Router, ctx: LoginContext): void {
  const { config, cookies, sessions } = ctx
  const guard = createFailureGuard({
    maxFailures: config.maxLoginFailures,
    windowMs: config.loginFailureWindowMs,
    banMs: config.loginFailureWindowMs,
    globalBudget: 100,
    maxBuckets: MAX_TRACKED_ADDRESSES,
  })
  const checks = [sameOrigin(ctx), parseForm(ctx)]

  router.post('/login', ...checks, (req, res) => {
    const ip = normalizeIp(req.ip ?? req.socket.remoteAddress)
    const sent = field(req, 'csrf')
    if (sent === '' || !cookieValues(req, cookies.login).some((v) => same(v, sent))) {
      ctx.event(req, res, { event_type: 'security_violation', user_id: 'management', result: 'dashboard_csrf_mismatch', details: { form: 'login' } })
      ctx.loginPage(req, res, 403, 'The sign-in form expired. Please try again.')
      return
    }
    // The right key always signs in: a refusal holds back wrong keys only, so nobody can lock the
    // operator out by failing from the same address (all of loopback counts as one).
    if (!same(field(req, 'key'), config.secretKey)) {
      const refusedMs = guard.bannedFor(ip)
      if (refusedMs > 0) {
        ctx.event(req, res, { event_type: 'security_violation', user_id: 'management', result: 'dashboard_login_refused', details: { reason: 'too many wrong keys' } })
        res.setHeader('Retry-After', String(Math.ceil(refusedMs / 1000)))
        ctx.loginPage(req, res, 429, 'Too many wrong keys from this address. Try again later.')
        return
      }
      guard.fail(ip)
      ctx.event(req, res, { event_type: 'auth_failure', result: 'dashboard_invalid_key', details: { component: 'dashboard' } })
      ctx.loginPage(req, res, 401, 'Wrong key.')
      return
    }
    const id = sessions.open(Date.now())
    res.append('Set-Cookie', cookies.set(req, cookies.session, id, Math.floor(config.sessionTtlMs / 1000)))
    res.append('Set-Cookie', cookies.set(req, cookies.login, '', 0))
    ctx.event(req, res, { event_type: 'auth_success', user_id: 'management', result: 'dashboard_login' })
    res.redirect(303, `${base(req)}/`)
  })

  router.post('/logout', ...checks, (req, res) => {
    const session = sessions.find(req)
    if (session && !same(field(req, 'csrf'), session.csrf)) {
      ctx.event(req, res, { event_type: 'security_violation', user_id: 'management', result: 'dashboard_csrf_mismatch', details: { form: 'logout' } })
      ctx.send(res, 403, messagePage(base(req), 'Refused', 'The form expired; reload the dashboard and try again.'))
      return
    }
    sessions.end(req)
    res.append('Set-Cookie', cookies.set(req, cookies.session, '', 0))
    res.redirect(303, `${base(req)}/`)
  })
}
