import type { RequestHandler } from 'express'
import type { Logger } from '@gatehouse/core'
import { hsts } from '@gatehouse/hsts'
import type { GatehouseConfig } from '../config/types'
import { hstsAdapter } from '../config/adapters'

/** HSTS and the other security headers; with them off, answers are still never cached. */
export function securityHeadersLayer(config: GatehouseConfig, logger: Logger): RequestHandler {
  if (config.server.security.headers.enabled) return hsts({ ...hstsAdapter.options(config), logger })
  return function noStoreMiddleware(_req, res, next) {
    res.setHeader('Cache-Control', 'no-store')
    next()
  }
}
