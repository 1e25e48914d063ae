import type { RequestHandler } from 'express'
import type { GatewayRuntime } from '../runtime'

/** While the gateway drains, every response asks its client to close the connection. */
export function shutdownLayer(runtime: GatewayRuntime): RequestHandler {
  return function shutdownMiddleware(_req, res, next) {
    if (runtime.shuttingDown) res.setHeader('Connection', 'close')
    next()
  }
}
