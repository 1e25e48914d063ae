import type { RequestHandler } from 'express'
import { gatehouseLocals, type Logger, type SecurityEventHandler } from '@gatehouse/core'
import { accessLog } from '@gatehouse/audit-log'

/** The access log sees every request, refusals included, when its response ends (health checks aside). */
export function accessLogLayer(emit: SecurityEventHandler, knownSecrets: string[], logger: Logger): RequestHandler {
  return accessLog({
    onEvent: emit,
    knownSecrets,
    logger,
    skip: (req) => req.path === '/healthz' || req.path === '/readyz',
    details: (_req, res) => {
      const id = gatehouseLocals(res).credentialVault?.credentialId
      return id ? { credential_id: id } : undefined
    },
  })
}
