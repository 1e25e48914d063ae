import express, { type Request, type Response, type Router } from 'express'
import { createMasker, emitSecurityEvent, gatehouseLocals, normalizeIp, type SecurityEventInput } from '@gatehouse/core'
import { DASHBOARD_CSS, DASHBOARD_ICON, DASHBOARD_JS } from './assets'
import type { SafeHtml } from './html'
import { mountLogin, type LoginContext } from './login'
import { PKG, resolveDashboardConfig, type DashboardOptions } from './options'
import { dashboardBody, loginBody, page } from './pages'
import { base, createSessions, dashboardCookies, token } from './session'
import { loadView } from './view'

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

const LOGIN_TOKEN_TTL_S = 600

/**
 * The read-only security dashboard, an Express router to mount at `/v0/management/dashboard`. It
 * does its own authentication and shows nothing without the management key: a login form posts
 * the key, compared in constant time, and opens a server-side session (an httpOnly, SameSite=Strict,
 * Secure cookie). Every POST carries a CSRF token; every page is served with a strict CSP and all
 * data HTML-escaped and masked. Works with Express 4 and 5.
 *
 * The parts: sessions and cookies (session.ts), sign-in and sign-out (login.ts), the data of a
 * page view (view.ts) and the pages (pages.ts).
 */
export function dashboardRouter(options: DashboardOptions): Router {
  const config = resolveDashboardConfig(options)
  const mask = createMasker({ knownSecrets: [...config.knownSecrets, config.secretKey] })
  const cookies = dashboardCookies(config.secureCookies)
  const sessions = createSessions(config, cookies)
  const router = express.Router()

  const send = (res: Response, status: number, body: SafeHtml): void => {
    res.status(status).type('html').send(body.value)
  }
  const ctx: LoginContext = {
    config,
    cookies,
    sessions,
    send,
    event(req: Request, res: Response, input: Omit<SecurityEventInput, 'ip'>): void {
      const requestId = gatehouseLocals(res).requestId
      emitSecurityEvent(
        config.onEvent,
        { ...input, ip: normalizeIp(req.ip ?? req.socket.remoteAddress), ...(requestId ? { request_id: requestId } : {}) },
        (err) => config.logger.error(`${PKG}: the dashboard onEvent handler threw`, { error: mask.text(String(err)) }),
      )
    },
    loginPage(req, res, status, message) {
      const t = token()
      res.append('Set-Cookie', cookies.set(req, cookies.login, t, LOGIN_TOKEN_TTL_S))
      send(res, status, page(base(req), 'Sign in', loginBody(base(req), t, message)))
    },
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

  mountLogin(router, ctx)

  router.get('/', (req, res, next) => {
    const session = sessions.find(req)
    if (!session) {
      ctx.loginPage(req, res, 200)
      return
    }
    loadView(config, mask)
      .then((view) => send(res, 200, page(base(req), 'Security dashboard', dashboardBody(base(req), session.csrf, view))))
      .catch(next)
  })

  router.use((_req, res) => {
    res.status(404).type('text/plain').send('Not found')
  })

  return router
}
