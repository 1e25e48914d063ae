import type { Request, Response } from 'express'
import {
  emitSecurityEvent,
  gatehouseLocals,
  matchEndpoint,
  resolveProviderRoute,
  sendProviderError,
  clientIp,
  type ProviderRoute,
} from '@gatehouse/core'
import { ProxyErrorCodes } from './errors'
import type { ProxyConfig, ResolvedProvider } from './options'

export interface Admitted {
  readonly provider: ResolvedProvider
  readonly route: ProviderRoute
}

/**
 * Routing and the endpoint allowlist. Returns the admitted route, or undefined when the request
 * was answered (404 unknown provider, 403 endpoint not allowed) or is not a provider request at
 * all (`notOurs`). A request is forwarded only for a (method, path) the registry knows and the
 * provider, or the client key's own scope, allows.
 */
export function admit(config: ProxyConfig, req: Request, res: Response): Admitted | 'answered' | 'not-ours' {
  const locals = gatehouseLocals(res)
  const route = locals.route ?? resolveProviderRoute(req.path, req.headers)
  if (!route) return 'not-ours'
  const provider = config.providers.get(route.provider)
  if (!provider) {
    sendProviderError(res, route.provider, 404, {
      message: `Provider ${route.provider} is not configured on this gateway`,
    })
    return 'answered'
  }
  if (locals.endpoint !== undefined && locals.route === route) return { provider, route }
  const matched = matchEndpoint(route.provider, req.method, route.upstreamPath)
  const scope = config.endpointsFor?.(req, res) ?? locals.clientKeyEndpoints
  const allowed =
    matched !== undefined && (scope ? scope.includes(matched.spec.id) : provider.allowed.has(matched.spec.id))
  if (!allowed) {
    emitSecurityEvent(config.onEvent, {
      event_type: 'security_violation',
      provider: route.provider,
      ip: clientIp(req),
      ...(locals.requestId !== undefined ? { request_id: locals.requestId } : {}),
      ...(locals.clientKeyId !== undefined ? { user_id: locals.clientKeyId } : {}),
      result: 'endpoint_denied',
      details: {
        code: ProxyErrorCodes.GH_PROXY_ENDPOINT_DENIED,
        method: req.method,
        endpoint: matched?.spec.id ?? 'unknown',
      },
    })
    sendProviderError(res, route.provider, 403, {
      message: matched
        ? `The endpoint ${req.method} ${matched.spec.path} (${matched.spec.id}) is not allowed for this API key`
        : `${req.method} on this path is not an endpoint this gateway forwards`,
      code: 'endpoint_not_allowed',
    })
    return 'answered'
  }
  locals.provider = route.provider
  locals.route = route
  locals.endpoint = matched.spec.id
  locals.endpointInference = matched.spec.inference
  return { provider, route }
}
