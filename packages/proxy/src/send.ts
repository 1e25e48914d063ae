import type http from 'node:http'
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { clientIp, emitSecurityEvent, gatehouseLocals, sendProviderError, type ProviderName } from '@gatehouse/core'
import { ProxyErrorCodes } from './errors'
import { coded, setFlight } from './flight'
import type { HeaderPolicy } from './headers'
import type { InjectedSecrets } from './mask'
import { withStreamUsage } from './metering'
import { MadeObjectWatch } from './made'
import { tenantBinder } from './tenant'
import type { ProxyConfig, ResolvedProvider } from './options'
import { clearTimers, type Flight } from './relay'
import type { FailRequest } from './upstream'

/** Hands one admitted request to its provider's proxy. */
export type Send = (req: Request, res: Response, next: NextFunction, p: ResolvedProvider, upstreamPath: string) => void

/** The body to send: the caller's (validated) buffer, a body parser's JSON, or the stream itself. */
function bodyOf(config: ProxyConfig, req: Request, res: Response): Buffer | undefined {
  const given = config.body?.(req, res)
  if (given !== undefined) return given
  // A body parser read the stream: send what it parsed rather than an empty body.
  if (req.readableEnded && req.body !== undefined && req.body !== null && typeof req.body === 'object') {
    return Buffer.from(JSON.stringify(req.body))
  }
  return undefined
}

/** A streamed body keeps the client's declared length (Node checks it); otherwise Node chunks it. */
function streamedLength(req: Request): number | undefined {
  const cl = req.headers['content-length']
  if (cl === undefined || req.headers['transfer-encoding'] !== undefined) return undefined
  const n = Number(cl)
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined
}

/**
 * The send step of one proxy: the credential (none: 503, never sent), the body to write, the flight
 * that follows the request, the allowlisted upstream headers and path, the first-byte timer, then
 * http-proxy-middleware. Made once per proxy; what it allocates per request is the flight.
 */
export function sender(
  config: ProxyConfig,
  policies: ReadonlyMap<ProviderName, HeaderPolicy>,
  proxies: ReadonlyMap<ProviderName, RequestHandler>,
  injectedOf: (headers: Readonly<Record<string, string>>) => InjectedSecrets,
  fail: FailRequest,
): Send {
  const bindTenant = tenantBinder()
  return (req, res, next, p, upstreamPath) => {
    const locals = gatehouseLocals(res)
    const credential = config.credential?.(req, res) ?? p.staticCredential
    if (!credential) {
      emitSecurityEvent(config.onEvent, {
        event_type: 'credential_access',
        provider: p.name,
        ip: clientIp(req),
        ...(locals.requestId !== undefined ? { request_id: locals.requestId } : {}),
        result: 'unavailable',
        details: { code: ProxyErrorCodes.GH_PROXY_NO_CREDENTIAL },
      })
      sendProviderError(res, p.name, 503, {
        message: `No upstream credential is available for provider "${p.name}"`,
      })
      return
    }
    let body = bodyOf(config, req, res)
    const tenant = locals.clientKeyId
    if (config.tenantEndUsers && tenant !== undefined && body !== undefined)
      body = bindTenant(locals.endpoint, (req as { body?: unknown }).body, body, tenant) ?? body
    const asked =
      config.streamUsage && body !== undefined
        ? withStreamUsage(locals.endpoint, (req as { body?: unknown }).body, body)
        : undefined
    if (asked) body = asked
    const policy = policies.get(p.name)!
    const f: Flight = {
      ...(asked ? { stripUsageEvent: true } : {}),
      provider: p.name,
      credential,
      injected: injectedOf(credential.headers),
      policy,
      body,
      inference: locals.endpointInference ?? false,
      done: false,
    }
    const made = config.objectOwners && tenant !== undefined ? MadeObjectWatch.for(config.objectOwners, tenant, locals.endpoint, body, locals.batchInput !== undefined) : undefined
    if (made) f.made = made
    setFlight(req, f)
    // The request's headers become exactly what may go upstream: http-proxy copies them as they are.
    req.headers = policy.outgoing(
      req.headers,
      credential.headers,
      config.extraHeaders,
      body !== undefined ? body.length : streamedLength(req),
      tenant,
    ) as http.IncomingHttpHeaders
    const q = req.url.indexOf('?')
    req.url = upstreamPath + (q === -1 ? '' : req.url.slice(q))
    f.firstByteTimer = setTimeout(
      () => fail(req, res, p.name, coded(ProxyErrorCodes.GH_PROXY_FIRST_BYTE_TIMEOUT, 'first byte timeout')),
      config.timeouts.firstByte,
    )
    res.on('close', () => {
      // The client went away (or the response ended): never leave the upstream request running.
      if (!f.done) {
        f.done = true
        clearTimers(f)
        f.proxyReq?.destroy()
        f.proxyRes?.destroy()
      }
    })
    void proxies.get(p.name)!(req, res, next)
  }
}
