import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Request } from 'express'
import type { DashboardConfig } from './options'

/** A signed-in browser: its CSRF token for the forms, and when the sign-in ends. */
export interface Session {
  csrf: string
  expiresAt: number
}

/** 256 random bits, base64url: session ids, CSRF tokens. */
export const token = (): string => randomBytes(32).toString('base64url')
const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest()
/** Constant-time equality of two strings of any length. */
export const same = (a: string, b: string): boolean => timingSafeEqual(digest(a), digest(b))

/** Every value of one cookie in the Cookie header (a name can appear more than once). */
export function cookieValues(req: Request, name: string): string[] {
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

/** Where the router is mounted (`/v0/management/dashboard`), the path of its cookies and links. */
export const base = (req: Request): string => req.baseUrl || ''

/** The router's cookies: names (`__Secure-` with secureCookies) and `Set-Cookie` values scoped to its path. */
export interface Cookies {
  readonly session: string
  readonly login: string
  /** A `Set-Cookie` value: HttpOnly, SameSite=Strict, Secure with secureCookies; Max-Age 0 ends it. */
  set(req: Request, name: string, value: string, maxAgeS: number): string
}

export function dashboardCookies(secure: boolean): Cookies {
  const prefix = secure ? '__Secure-' : ''
  return {
    session: `${prefix}gatehouse_dashboard`,
    login: `${prefix}gatehouse_dashboard_login`,
    set: (req, name, value, maxAgeS) =>
      `${name}=${value}; Path=${base(req) || '/'}; Max-Age=${maxAgeS}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`,
  }
}

/** Server-side sessions, at most `maxSessions` (the oldest ends first), each for `sessionTtl`. */
export interface Sessions {
  /** A new session; returns its id, the cookie's value. */
  open(now: number): string
  /** The live session named by one of the request's session cookies. */
  find(req: Request): Session | undefined
  /** End every session the request names. */
  end(req: Request): void
}

export function createSessions(config: DashboardConfig, cookies: Cookies): Sessions {
  const sessions = new Map<string, Session>()
  const sweep = (now: number): void => {
    for (const [id, s] of sessions) if (s.expiresAt <= now) sessions.delete(id)
  }
  return {
    open(now) {
      sweep(now)
      if (sessions.size >= config.maxSessions) {
        const oldest = sessions.keys().next().value
        if (oldest !== undefined) sessions.delete(oldest)
      }
      const id = token()
      sessions.set(id, { csrf: token(), expiresAt: now + config.sessionTtlMs })
      return id
    },
    find(req) {
      const now = Date.now()
      for (const id of cookieValues(req, cookies.session)) {
        const s = sessions.get(id)
        if (!s) continue
        if (s.expiresAt > now) return s
        sessions.delete(id)
      }
      return undefined
    },
    end(req) {
      for (const id of cookieValues(req, cookies.session)) sessions.delete(id)
    },
  }
}
