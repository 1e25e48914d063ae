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

  return function hstsMiddleware(req, res, next) {
    if (cacheControl !== undefined) res.setHeader('Cache-Control', cacheControl)
    if (legacyXss !== undefined) res.setHeader('X-XSS-Protection', legacyXss)
    headers(req, res, next)
  }
}
