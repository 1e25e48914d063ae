import { createHash, timingSafeEqual } from 'node:crypto'
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { isLoopback, normalizeIp, type createFailureGuard, type SecurityEventInput } from '@gatehouse/core'
import type { ManagementOptions } from './context'

export const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest()

export const fail = (res: Response, status: number, message: string): void => {
  res.setHeader('Cache-Control', 'no-store')
  res.status(status).json({ error: { message, status } })
}

type ManagementEvent = (req: Request, res: Response, input: Omit<SecurityEventInput, 'ip'>) => void

/**
 * The management key check: loopback callers only unless allowRemote, the Bearer key compared in
 * constant time, an address banned after repeated wrong keys (never the right key).
 */
export function managementAuth(options: Pick<ManagementOptions, 'allowRemote'>, guard: ReturnType<typeof createFailureGuard>, expected: Buffer, event: ManagementEvent): RequestHandler {
  return function managementAuthMiddleware(req: Request, res: Response, next: NextFunction) {
    res.setHeader('Cache-Control', 'no-store')
    const ip = normalizeIp(req.ip)
    if (!options.allowRemote && !isLoopback(ip)) {
      event(req, res, { event_type: 'security_violation', result: 'management_remote_refused', details: { path: req.baseUrl } })
      fail(res, 403, 'The management API accepts loopback callers only')
      return
    }
    const header = req.headers.authorization
    const m = typeof header === 'string' ? /^Bearer[ \t]+(\S+)$/i.exec(header) : null
    if (m === null) {
      // No key is no guess: refused, never counted, so nobody can ban the key holder's address.
      event(req, res, { event_type: 'auth_failure', user_id: 'management', result: 'missing_management_key', details: { counted: false } })
      res.setHeader('WWW-Authenticate', 'Bearer')
      fail(res, 401, 'Invalid or missing management key')
      return
    }
    // The right key is never refused by the guard: a ban holds back wrong keys only.
    if (timingSafeEqual(digest(m[1]!), expected)) {
      next()
      return
    }
    const bannedMs = guard.bannedFor(ip)
    if (bannedMs > 0) {
      event(req, res, { event_type: 'security_violation', user_id: 'management', result: 'management_banned' })
      res.setHeader('Retry-After', Math.ceil(bannedMs / 1000))
      fail(res, 429, 'Too many failed attempts; try again later')
      return
    }
    const r = guard.fail(ip)
    event(req, res, {
      event_type: 'auth_failure',
      user_id: 'management',
      result: 'invalid_management_key',
      details: { failures: r.count, banned: r.bannedMs > 0 },
    })
    res.setHeader('WWW-Authenticate', 'Bearer')
    fail(res, 401, 'Invalid or missing management key')
  }
}
