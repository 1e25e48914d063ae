import type { RequestHandler } from 'express'
import { clientIp, detectProvider, emitSecurityEvent, gatehouseLocals, hostGuard, isLoopbackBind, sendProviderError, type SecurityEventHandler } from '@gatehouse/core'

/**
 * On a loopback bind, refuse a request whose Host is not an IP literal, `localhost` or one of
 * `server.allowed_hosts`: a DNS-rebinding page in the operator's browser then cannot reach the
 * gateway, its dashboard or its management API. On any other bind, undefined (no layer).
 */
export function hostGuardLayer(bind: string, allowedHosts: readonly string[], emit: SecurityEventHandler): RequestHandler | undefined {
  if (!isLoopbackBind(bind)) return undefined
  const ok = hostGuard({ allowedHosts })
  return function hostGuardMiddleware(req, res, next) {
    if (ok(req.headers.host)) return next()
    emitSecurityEvent(emit, {
      event_type: 'security_violation',
      ip: clientIp(req),
      ...(gatehouseLocals(res).requestId !== undefined ? { request_id: gatehouseLocals(res).requestId } : {}),
      result: 'host_refused',
      details: { reason: 'the Host header names no address of this gateway (DNS rebinding?)' },
    })
    res.setHeader('Connection', 'close')
    sendProviderError(res, detectProvider({ path: '/', headers: req.headers }), 421, {
      message: 'Misdirected request: this gateway answers only its own host names (server.allowed_hosts)',
    })
  }
}
