import type { RequestHandler } from 'express'
import { detectProvider, sendProviderError } from '@gatehouse/core'
import type { GatewayRuntime } from '../runtime'

/** Maintenance mode: every provider request gets the provider's own 503 with Retry-After. */
export function maintenanceLayer(runtime: GatewayRuntime, retryAfter: number): RequestHandler {
  return function maintenanceMiddleware(req, res, next) {
    if (!runtime.maintenance.enabled) return next()
    sendProviderError(res, detectProvider(req), 503, { message: runtime.maintenance.message }, { 'Retry-After': retryAfter })
  }
}
