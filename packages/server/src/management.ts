import { createHash, timingSafeEqual } from 'node:crypto'
import express, { type NextFunction, type Request, type RequestHandler, type Response, type Router } from 'express'
import {
  createFailureGuard,
  emitSecurityEvent,
  gatehouseLocals,
  isProviderName,
  normalizeIp,
  isLoopback,
  isGatehouseError,
  parseDuration,
  type KeyLimitScope,
  type Logger,
  type SecurityEventHandler,
  type SecurityEventInput,
} from '@gatehouse/core'
import { validateKeyScope, type ManagedKeyStore } from '@gatehouse/client-auth'
import { auditGate } from './audit-gate'
import type { GatewayRuntime } from './gateway'
import type { RuntimeControl } from './shared-runtime'


export interface ManagementOptions {
  secretKey: string
  allowRemote: boolean
  runtime: GatewayRuntime
  /** How maintenance and the kill switch are changed: here, or in the shared store for every replica. */
  control: RuntimeControl
  keyStore: ManagedKeyStore
  emit: SecurityEventHandler
  logger: Logger
  /** Failed attempts from one address before it is banned. @default 5 */
  maxFailures?: number
  /** Window in which failures are counted, and the ban's length. @default 10 min, 30 min */
  failureWindowMs?: number
  banMs?: number
  /** Wrong keys from all addresses together, within the window, before every wrong key is banned. @default 100 */
  globalFailureBudget?: number
  /** Extra routes (credentials, denylist) mounted on the same authenticated router. */
  extend?: (router: Router, ctx: ManagementContext) => void
  /**
   * When false (the audit log cannot be written), changes that relax or add are refused with 503,
   * and so is an export with secrets; denylist additions, revocations, maintenance on and a provider
   * switched off go ahead, logged at error and counted (`unaudited_change`).
   */
  canAudit?: () => boolean
  /** Resolves true once what was emitted so far is on disk in the audit log (an export with secrets waits for it). */
  auditWritten?: () => Promise<boolean>
}

export interface ManagementContext {
  /** Emit a config_change event for a change made through the API. */
  changed(req: Request, res: Response, action: string, details?: Record<string, unknown>): void
  /** Answer an error in the management API's shape. */
  fail(res: Response, status: number, message: string): void
  /** Who made the change, for events raised by the component that carries it out. */
  who(req: Request, res: Response): { ip: string; user_id: string; request_id?: string }
  /** True once everything emitted so far is on disk in the audit log (true without an audit log). */
  auditWritten(): Promise<boolean>
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest()

const fail = (res: Response, status: number, message: string): void => {
  res.setHeader('Cache-Control', 'no-store')
  res.status(status).json({ error: { message, status } })
}

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
  router.use(function managementAuthMiddleware(req: Request, res: Response, next: NextFunction) {
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
  })
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

  // Client keys
  router.get('/keys', (_req, res) => {
    res.json({ keys: options.keyStore.list().map(({ hash: _hash, ...k }) => k) })
  })
  router.post('/keys', async (req, res) => {
    const body = (req.body ?? {}) as { name?: unknown; providers?: unknown; endpoints?: unknown; models?: unknown; limits?: unknown; networks?: unknown }
    if (typeof body.name !== 'string' || body.name.length === 0 || body.name.length > 100) {
      fail(res, 400, 'name: must be a string of 1 to 100 characters')
      return
    }
    try {
      validateKeyScope(body)
    } catch (e) {
      fail(res, 400, (e as Error).message.replace('@gatehouse/client-auth: ', ''))
      return
    }
    const { key, record } = await options.keyStore.create({
      name: body.name,
      ...(body.providers !== undefined ? { providers: body.providers as string[] } : {}),
      ...(body.endpoints !== undefined ? { endpoints: body.endpoints as string[] } : {}),
      ...(body.models !== undefined ? { models: body.models as string[] } : {}),
      ...(body.networks !== undefined ? { networks: body.networks as string[] } : {}),
      ...(body.limits !== undefined ? { limits: body.limits as KeyLimitScope } : {}),
    })
    ctx.changed(req, res, 'key_created', { key_id: record.id, name: record.name })
    res.status(201).json({ id: record.id, name: record.name, key, note: 'The key is shown once and never stored.' })
  })
  router.post('/keys/:id/rotate', async (req, res) => {
    const id = String(req.params.id)
    const body = (req.body ?? {}) as { grace?: unknown }
    let graceMs: number
    try {
      graceMs = parseDuration((body.grace ?? '24h') as string, 'grace')
    } catch (e) {
      fail(res, 400, (e as Error).message)
      return
    }
    if (!options.keyStore.list().some((k) => k.id === id)) {
      fail(res, 404, 'No key with that id')
      return
    }
    try {
      const r = await options.keyStore.rotate(id, graceMs)
      ctx.changed(req, res, 'key_rotated', { key_id: r.previous.id, successor: r.record.id, valid_until: r.previous.expires_at })
      res.status(201).json({ id: r.record.id, name: r.record.name, key: r.key, previous: { id: r.previous.id, valid_until: r.previous.expires_at }, note: 'The key is shown once and never stored.' })
    } catch (e) {
      if (isGatehouseError(e) && e.statusCode === 409) return fail(res, 409, e.message.replace('@gatehouse/client-auth: ', ''))
      throw e
    }
  })
  router.delete('/keys/:id', async (req, res) => {
    const id = String(req.params.id)
    if (!options.keyStore.list().some((k) => k.id === id)) {
      fail(res, 404, 'No key with that id')
      return
    }
    const r = await options.keyStore.revoke(id)
    ctx.changed(req, res, 'key_revoked', { key_id: r.id })
    res.json({ id: r.id, revoked_at: r.revoked_at })
  })
  router.delete('/keys', async (req, res) => {
    const ids = options.keyStore.list().filter((k) => !k.revoked_at).map((k) => k.id)
    for (const id of ids) await options.keyStore.revoke(id)
    ctx.changed(req, res, 'keys_revoked_all', { count: ids.length })
    res.json({ revoked: ids })
  })

  // Maintenance and per-provider kill switch
  router.put('/maintenance', async (req, res) => {
    const body = (req.body ?? {}) as { enabled?: unknown; message?: unknown }
    if (typeof body.enabled !== 'boolean' || (body.message !== undefined && typeof body.message !== 'string')) {
      fail(res, 400, 'body must be {"enabled": boolean, "message"?: string}')
      return
    }
    await options.control.setMaintenance({
      enabled: body.enabled,
      message: typeof body.message === 'string' ? body.message : options.runtime.maintenance.message,
    })
    ctx.changed(req, res, 'maintenance', { enabled: body.enabled })
    res.json(options.runtime.maintenance)
  })
  router.put('/providers/:name', async (req, res) => {
    const name = String(req.params.name)
    const body = (req.body ?? {}) as { enabled?: unknown; message?: unknown }
    if (!isProviderName(name)) {
      fail(res, 404, 'Unknown provider')
      return
    }
    if (typeof body.enabled !== 'boolean' || (body.message !== undefined && typeof body.message !== 'string')) {
      fail(res, 400, 'body must be {"enabled": boolean, "message"?: string}')
      return
    }
    await options.control.setProvider(name, body.enabled ? undefined : typeof body.message === 'string' ? body.message : `Provider ${name} is temporarily disabled`)
    ctx.changed(req, res, 'provider_switch', { provider: name, enabled: body.enabled })
    res.json({ provider: name, enabled: body.enabled })
  })

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
