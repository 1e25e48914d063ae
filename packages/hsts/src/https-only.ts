import { detectProvider, emitSecurityEvent, gatehouseLocals, resolveProviderRoute, sendProviderError } from '@gatehouse/core'
import type { Request, RequestHandler } from 'express'
import { HOST_PATTERN, resolveHttpsOnlyConfig, type HttpsOnlyOptions } from './options'

const HOST = new RegExp(HOST_PATTERN)

/**
 * Refuse (403) or redirect (308/301) plain-HTTP requests. Whether a request is HTTPS comes from
 * `req.secure`, which believes `X-Forwarded-Proto` only from proxies the app's `trust proxy`
 * setting trusts; the header is never read directly.
 */
export function httpsOnly(options: HttpsOnlyOptions = {}): RequestHandler {
  const config = resolveHttpsOnlyConfig(options)
  const { onEvent, logger } = config
  const portSuffix = config.httpsPort === 443 ? '' : `:${config.httpsPort}`

  const target = (req: Request): string | undefined => {
    let host = config.redirectHost
    if (host === undefined) {
      const name = req.hostname
      if (typeof name !== 'string' || name.length > 255 || !HOST.test(name)) return undefined
      host = `${name}${portSuffix}`
    }
    const url = req.originalUrl
    const path = url.startsWith('/') && !url.startsWith('//') ? url : '/'
    return `https://${host}${path}`
  }

  return function httpsOnlyMiddleware(req, res, next) {
    try {
      if (req.secure) {
        next()
        return
      }
      const location = config.action === 'redirect' ? target(req) : undefined
      const route = resolveProviderRoute(req.path)
      const g = gatehouseLocals(res)
      emitSecurityEvent(
        onEvent,
        {
          event_type: 'security_violation',
          ...(route ? { provider: route.provider } : {}),
          ...(req.ip ? { ip: req.ip } : {}),
          ...(g.requestId ? { request_id: g.requestId } : {}),
          result: location ? 'https_redirect' : 'https_required',
          details: { method: req.method, path: req.path, protocol: req.protocol },
        },
        (err) => logger.error('@gatehouse/hsts: the onEvent handler threw', { error: err instanceof Error ? err.message : String(err) }),
      )
      if (location) {
        res.setHeader('Cache-Control', 'no-store')
        res.setHeader('Location', location)
        res.setHeader('Content-Length', '0')
        res.statusCode = config.redirectStatus
        res.end()
        return
      }
      sendProviderError(res, detectProvider(req), 403, { message: 'HTTPS is required.' })
    } catch (err) {
      next(err)
    }
  }
}
