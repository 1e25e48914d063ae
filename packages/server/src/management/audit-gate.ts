import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { Logger } from '@gatehouse/core'

/**
 * The management changes that contain an incident: they go ahead when the audit log cannot be
 * written (an attacker who fills the disk must not freeze the operator), with a loud error and a
 * metric. Everything else that changes state, and any export with secrets, needs the audit log.
 */
export function defensiveAction(req: Request): string | undefined {
  const path = req.path
  const body = (req.body ?? {}) as { enabled?: unknown }
  if (req.method === 'POST' && path === '/security/ip-denylist') return 'denylist_add'
  if (req.method === 'DELETE' && (path === '/keys' || /^\/keys\/[^/]+$/.test(path))) return 'key_revoke'
  if (req.method === 'DELETE' && /^\/auths\/[^/]+(\/[^/]+)?$/.test(path) && path !== '/auths/export') return 'credential_revoke'
  if (req.method === 'PUT' && path === '/maintenance' && body.enabled === true) return 'maintenance_on'
  if (req.method === 'PUT' && /^\/providers\/[^/]+$/.test(path) && body.enabled === false) return 'provider_off'
  return undefined
}

const exportsSecrets = (req: Request): boolean => {
  if (req.path !== '/auths/export') return false
  const q = req.url.indexOf('?')
  return q !== -1 && new URLSearchParams(req.url.slice(q + 1)).get('include_secrets') === 'true'
}

export interface AuditGateOptions {
  canAudit: () => boolean
  logger: Logger
  /** Told of each defensive change made while the audit log is down (the metric). */
  onUnaudited: (req: Request, res: Response, action: string) => void
  fail: (res: Response, status: number, message: string) => void
}

/** Mounted after the body parser: reads are free, changes and secret exports need the audit log. */
export function auditGate(options: AuditGateOptions): RequestHandler {
  return function managementAuditGate(req: Request, res: Response, next: NextFunction) {
    const secrets = exportsSecrets(req)
    if ((req.method === 'GET' && !secrets) || options.canAudit()) return next()
    if (secrets) return options.fail(res, 503, 'Exporting secrets is refused while the audit log cannot be written')
    const action = defensiveAction(req)
    if (!action) return options.fail(res, 503, 'Changes are refused while the audit log cannot be written')
    options.logger.error(`management: ${action} goes ahead while the audit log cannot be written; it is in this log and the metrics only until the audit log recovers`, {
      action,
      path: req.path,
    })
    options.onUnaudited(req, res, action)
    next()
  }
}
