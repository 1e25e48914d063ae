import type { IncomingMessage, ServerResponse } from 'node:http'
import type { RequestHandler } from 'express'
import helmet from 'helmet'
import { GatehouseConfigError } from '@gatehouse/core'
import { resolveHstsConfig, type HstsOptions } from './options'

/**
 * Every header the hsts() middleware may set. A proxy in front of an upstream can drop the
 * upstream's copies of these so that the gateway's policy is the one the client sees.
 */
export const SECURITY_HEADER_NAMES = [
  'strict-transport-security',
  'x-content-type-options',
  'x-frame-options',
  'x-xss-protection',
  'content-security-policy',
  'content-security-policy-report-only',
  'cross-origin-opener-policy',
  'cross-origin-resource-policy',
  'origin-agent-cluster',
  'referrer-policy',
  'x-dns-prefetch-control',
  'x-download-options',
  'x-permitted-cross-domain-policies',
] as const

/**
 * HSTS and the rest of the security headers, on helmet, set on every response before any later
 * middleware runs (so refusals and error pages carry them too). Removes `X-Powered-By` and sets
 * `Cache-Control: no-store` by default. Mount it first.
 */
export function hsts(options: HstsOptions = {}): RequestHandler {
  const config = resolveHstsConfig(options)
  const on = config.enabled
  const d = on && config.helmetDefaults
  let headers: ReturnType<typeof helmet>
  try {
    headers = helmet({
      strictTransportSecurity: on && config.hsts ? { ...config.hsts } : false,
      xContentTypeOptions: on && config.contentTypeOptions,
      xFrameOptions: on && config.frameOptions ? { action: config.frameOptions } : false,
      xXssProtection: on && config.xssProtection === '0',
      contentSecurityPolicy:
        on && config.contentSecurityPolicy
          ? { useDefaults: false, directives: config.contentSecurityPolicy.directives, reportOnly: config.contentSecurityPolicy.reportOnly }
          : false,
      crossOriginEmbedderPolicy: false,
      crossOriginOpenerPolicy: d,
      crossOriginResourcePolicy: d,
      originAgentCluster: d,
      referrerPolicy: d,
      xDnsPrefetchControl: d,
      xDownloadOptions: d,
      xPermittedCrossDomainPolicies: d,
      xPoweredBy: true,
    })
  } catch (err) {
    // helmet validates CSP directive names and values
    throw new GatehouseConfigError(
      'GH_HSTS_INVALID_HEADER_VALUE',
      `@gatehouse/hsts: contentSecurityPolicy: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    )
  }
  const cacheControl = config.cacheControl
  const legacyXss = on && config.xssProtection !== undefined && config.xssProtection !== '0' ? config.xssProtection : undefined

  // Every option here is static (no nonce functions), so helmet's answer is the same for every
  // request: record it once and replay it, instead of running helmet's chain per request.
  const recorded = recordStaticHeaders(headers)

  if (recorded) {
    const { set, remove } = recorded
    return function hstsMiddleware(_req, res, next) {
      if (cacheControl !== undefined) res.setHeader('Cache-Control', cacheControl)
      if (legacyXss !== undefined) res.setHeader('X-XSS-Protection', legacyXss)
      for (let i = 0; i < set.length; i++) res.setHeader(set[i]![0], set[i]![1])
      for (let i = 0; i < remove.length; i++) res.removeHeader(remove[i]!)
      next()
    }
  }
  return function hstsMiddleware(req, res, next) {
    if (cacheControl !== undefined) res.setHeader('Cache-Control', cacheControl)
    if (legacyXss !== undefined) res.setHeader('X-XSS-Protection', legacyXss)
    headers(req, res, next)
  }
}

/**
 * Run a helmet middleware once against a recording response. Returns the headers it sets and
 * removes, or undefined when it did anything else (then it runs per request as usual).
 */
function recordStaticHeaders(
  mw: (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void,
): { set: Array<[string, string]>; remove: string[] } | undefined {
  const set: Array<[string, string]> = []
  const remove: string[] = []
  let ok = true
  let called = false
  const res = {
    setHeader: (name: string, value: unknown) => {
      if (typeof value !== 'string') ok = false
      else set.push([name, value])
      return res
    },
    removeHeader: (name: string) => void remove.push(name),
    getHeader: () => undefined,
    locals: {},
  }
  try {
    mw({ headers: {}, method: 'GET', url: '/' } as unknown as IncomingMessage, res as unknown as ServerResponse, (err?: unknown) => {
      called = true
      if (err) ok = false
    })
  } catch {
    return undefined
  }
  return ok && called ? { set, remove } : undefined
}
