import type { RequestHandler } from 'express'
import { gatehouseLocals, type Logger, type SecurityEventHandler } from '@gatehouse/core'
import { requestGuard, type SecretPolicy } from '@gatehouse/request-guard'
import type { GatehouseConfig } from '../config/types'
import { requestGuardAdapter } from '../config/adapters'

/**
 * Request bodies, caps and outbound secret detection (request-guard). A client key listed under
 * secret_detection.keys gets its own policy, over the provider's and the gateway's.
 */
export function requestGuardLayer(config: GatehouseConfig, emit: SecurityEventHandler, logger: Logger): RequestHandler {
  const options = requestGuardAdapter.options(config)
  const keys = config.secret_detection.keys ?? {}
  const policy = options.secrets && Object.keys(keys).length
    ? (_req: unknown, res: Parameters<typeof gatehouseLocals>[0]): SecretPolicy | undefined => {
        const id = gatehouseLocals(res).clientKeyId
        return id !== undefined && Object.hasOwn(keys, id) ? (keys[id] as SecretPolicy) : undefined
      }
    : undefined
  return requestGuard({
    ...options,
    ...(options.secrets && policy ? { secrets: { ...options.secrets, policy } } : {}),
    onEvent: emit,
    logger,
  })
}
