import type { RequestHandler } from 'express'
import type { Logger, SecurityEventHandler } from '@gatehouse/core'
import { clientAuth, type ManagedKeyStore } from '@gatehouse/client-auth'
import type { IpFilterMiddleware } from '@gatehouse/ip-filter'
import type { GatehouseConfig } from '../config/types'
import { jwtAdapter } from '../config/adapters'

/** Client keys (and JWTs when configured); a decoy key's caller is denied for a day. */
export function clientAuthLayer(config: GatehouseConfig, keyStore: ManagedKeyStore, ipf: IpFilterMiddleware, emit: SecurityEventHandler, logger: Logger): RequestHandler {
  const jwt = jwtAdapter.options(config)
  return clientAuth({
    store: keyStore,
    honeytokens: config.auth.honeytokens,
    ...(jwt ? { jwt } : {}),
    // Every request's key id is in its provider_request line; one success line per key and address per 5 minutes.
    successEventInterval: 300_000,
    onEvent: emit,
    logger,
    onHoneytoken: ({ ip }) => void ipf.add(ip, { reason: 'honeytoken presented', ttlSeconds: 86_400 }).catch(() => undefined),
  })
}
