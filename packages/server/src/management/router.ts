import express, { type NextFunction, type Request, type RequestHandler, type Response, type Router } from 'express'
import {
  createFailureGuard,
  emitSecurityEvent,
  gatehouseLocals,
  normalizeIp,
  isGatehouseError,
  type SecurityEventHandler,
  type SecurityEventInput,
} from '@gatehouse/core'
import { auditGate } from './audit-gate'
import { digest, fail, managementAuth } from './auth'
import { mountKeyRoutes } from './keys'
import { mountRuntimeRoutes } from './runtime-routes'
import type { ManagementContext, ManagementOptions } from './context'

export type { ManagementContext, ManagementOptions } from './context'

/**
 * Refuses CORS preflights (OPTIONS) to the management API and the dashboard, before either looks
 * at them: neither is meant for a web page, and no preflight counts against anyone's budget. The
 * answer carries no Access-Control-* header, so the browser never sends the request it asked for.
 */
export function refusePreflight(emit: SecurityEventHandler): RequestHandler {
  return function managementPreflightMiddleware(req, res, next) {
    if (req.method !== 'OPTIONS') return next()
    emitSecurityEvent(emit, {
      event_type: 'security_violation',
      user_id: 'management',
      ip: normalizeIp(req.ip),
      result: 'management_preflight_refused',
      details: { origin: String(req.headers.origin ?? '').slice(0, 200) },
      ...(gatehouseLocals(res).requestId ? { request_id: gatehouseLocals(res).requestId! } : {}),
    })
    fail(res, 403, 'Cross-origin requests to the management API are refused')
  }
}

/**
 * The management API under `/v0/management`: Bearer key compared in constant time, loopback
 * callers only unless allowRemote, an address banned after repeated failures, every change a
 * `config_change` event.
 */
export function managementRouter(options: ManagementOptions): Router {
  const expected = digest(options.secretKey)
  const maxFailures = options.maxFailures ?? 5
  const windowMs = options.failureWindowMs ?? 10 * 60_000
  const banMs = options.banMs ?? 30 * 60_000
  const guard = createFailureGuard({
    maxFailures,
    windowMs,
    banMs,
    globalBudget: options.globalFailureBudget ?? 100,
    maxBuckets: 10_000,
  })

  const event = (req: Request, res: Response, input: Omit<SecurityEventInput, 'ip'>): void =>
    emitSecurityEvent(options.emit, {
      ...input,
      ip: normalizeIp(req.ip),
      ...(gatehouseLocals(res).requestId ? { request_id: gatehouseLocals(res).requestId! } : {}),
    })

  const ctx: ManagementContext = {
    changed: (req, res, action, details = {}) =>
      event(req, res, { event_type: 'config_change', user_id: 'management', result: action, details }),
    fail,
    who: (req, res) => ({
      ip: normalizeIp(req.ip),
      user_id: 'management',
      ...(gatehouseLocals(res).requestId ? { request_id: gatehouseLocals(res).requestId! } : {}),
    }),
    auditWritten: options.auditWritten ?? (() => Promise.resolve(true)),
  }

  const router = express.Router({ caseSensitive: true, strict: true })
  router.use(managementAuth(options, guard, expected, event))
  router.use(express.json({ limit: '64kb', strict: true, type: () => true }))
  const canAudit = options.canAudit
  if (canAudit) {
    router.use(
      auditGate({
        canAudit,
        logger: options.logger,
        fail,
        onUnaudited: (req, res, action) =>
          event(req, res, { event_type: 'config_change', user_id: 'management', result: 'unaudited_change', details: { action } }),
      }),
    )
  }

  mountKeyRoutes(router, ctx, options.keyStore)
  mountRuntimeRoutes(router, ctx, options)

  options.extend?.(router, ctx)

  router.use((_req, res) => fail(res, 404, 'Unknown management route'))
  router.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const status = (err as { status?: number }).status
    if (status === 400 || status === 413 || status === 415) fail(res, status, status === 413 ? 'Body too large' : 'Malformed JSON body')
    else if (isGatehouseError(err) && err.statusCode === 503) {
      // The shared store is unreachable: the change was made nowhere, rather than on this replica alone.
      options.logger.error('management change refused', { code: err.code })
      res.setHeader('Retry-After', 5)
      fail(res, 503, `${err.message.replace(/^[^:]*: /, '')}; try again when the gateway's Redis is back`)
    } else {
      options.logger.error('management request failed', { error: String(err) })
      fail(res, 500, 'Internal error')
    }
  })
  return router
}
