import type { RequestHandler } from 'express'
import { detectProvider, gatehouseLocals, resolveProviderRoute, sendProviderError, type ProviderName } from '@gatehouse/core'
import type { GatewayRuntime } from '../runtime'

/**
 * Routing and the per-provider kill switch. The route is resolved once here and kept in the
 * request's locals (provider, route), where every later layer and the proxy read it.
 */
export function routingLayer(providers: readonly ProviderName[], runtime: GatewayRuntime, retryAfter: number): RequestHandler {
  return function routeMiddleware(req, res, next) {
    const route = resolveProviderRoute(req.path, req.headers)
    if (!route) {
      sendProviderError(res, detectProvider(req), 404, { message: 'Unknown route' })
      return
    }
    if (!providers.includes(route.provider)) {
      sendProviderError(res, route.provider, 404, { message: `Provider ${route.provider} is not configured on this gateway` })
      return
    }
    const off = runtime.disabledProviders.get(route.provider)
    if (off !== undefined) {
      sendProviderError(res, route.provider, 503, { message: off }, { 'Retry-After': retryAfter })
      return
    }
    const locals = gatehouseLocals(res)
    locals.provider = route.provider
    locals.route = route
    next()
  }
}
