import {
  createOptionsResolver,
  GatehouseConfigError,
  isLogger,
  noopLogger,
  type GatehouseErrorCode,
  type Logger,
  type SecurityEventHandler,
} from '@gatehouse/core'

const PKG = '@gatehouse/hsts'

/** One year: the least max-age the HSTS preload list accepts. */
export const PRELOAD_MIN_MAX_AGE = 31_536_000

/** A Content-Security-Policy given as directives (helmet's form). */
export interface CspObject {
  /** `{ 'default-src': ["'self'"], 'frame-ancestors': ["'none'"] }` (camelCase names work too). */
  directives: Record<string, string | string[]>
  /** Send `Content-Security-Policy-Report-Only` instead. @default false */
  reportOnly?: boolean | undefined
}

/**
 * The security headers. The option names map one to one onto `server.security.headers.*`
 * (`strict_transport_security` → `strictTransportSecurity`, …); the HSTS fields can also be given
 * one by one (`maxAge`, `includeSubDomains`, `preload`).
 */
export interface HstsOptions {
  /**
   * `server.security.headers.enabled`. False sends none of the security headers; `X-Powered-By` is
   * still removed and `cacheControl` still applies.
   * @default true
   */
  enabled?: boolean | undefined
  /** HSTS max-age in seconds. @default 31536000 (one year) */
  maxAge?: number | undefined
  /** HSTS includeSubDomains. @default true */
  includeSubDomains?: boolean | undefined
  /** HSTS preload; needs maxAge >= 31536000 and includeSubDomains. @default false */
  preload?: boolean | undefined
  /**
   * `strict_transport_security`: the whole header value as the seed writes it
   * (`"max-age=31536000; includeSubDomains"`), `true` for the fields above, or `false` for no HSTS.
   * A string cannot be combined with maxAge/includeSubDomains/preload.
   * @default true
   */
  strictTransportSecurity?: boolean | string | undefined
  /** `content_type_options`: `X-Content-Type-Options: nosniff`, or false. @default 'nosniff' */
  contentTypeOptions?: boolean | 'nosniff' | undefined
  /** `frame_options`: `X-Frame-Options` (case-insensitive), or false. @default 'DENY' (helmet: SAMEORIGIN) */
  frameOptions?: 'DENY' | 'SAMEORIGIN' | 'deny' | 'sameorigin' | false | undefined
  /**
   * `xss_protection`: `X-XSS-Protection`. `'0'` (helmet's value) turns off the legacy XSS auditor;
   * `'1; mode=block'` (the seed's) is accepted but logged as a warning, see the README.
   * @default '0'
   */
  xssProtection?: '0' | '1' | '1; mode=block' | false | undefined
  /**
   * `content_security_policy`: the header value (`"default-src 'self'"`), helmet's directive
   * object, or false.
   * @default "default-src 'self'"
   */
  contentSecurityPolicy?: string | CspObject | false | undefined
  /**
   * Helmet's other default headers: Cross-Origin-Opener-Policy, Cross-Origin-Resource-Policy,
   * Origin-Agent-Cluster, Referrer-Policy, X-DNS-Prefetch-Control, X-Download-Options,
   * X-Permitted-Cross-Domain-Policies.
   * @default true
   */
  helmetDefaults?: boolean | undefined
  /**
   * `Cache-Control` set on every response before anything else runs, so gateway-made responses
   * carry it and a proxied upstream response's own Cache-Control replaces it. False leaves it alone.
   * @default 'no-store'
   */
  cacheControl?: string | false | undefined
  /** @default a no-op logger */
  logger?: Logger | undefined
}

export interface HstsConfig {
  readonly enabled: boolean
  /** undefined: no HSTS header. */
  readonly hsts: Readonly<{ maxAge: number; includeSubDomains: boolean; preload: boolean }> | undefined
  readonly contentTypeOptions: boolean
  readonly frameOptions: 'deny' | 'sameorigin' | undefined
  readonly xssProtection: '0' | '1' | '1; mode=block' | undefined
  readonly contentSecurityPolicy: Readonly<{ directives: Record<string, string[]>; reportOnly: boolean }> | undefined
  readonly helmetDefaults: boolean
  readonly cacheControl: string | undefined
  readonly logger: Logger
}

/** Printable ASCII only: nothing that could split a header. */
const HEADER_VALUE = '^[\\x20-\\x7e]*$'
const headerString = { type: 'string', minLength: 1, maxLength: 4096, pattern: HEADER_VALUE } as const

/** The JSON schema of the data-shaped options (the server composes its config schema from it). */
export const hstsOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    enabled: { type: 'boolean' },
    maxAge: { type: 'integer', minimum: 0, maximum: 1_000_000_000 },
    includeSubDomains: { type: 'boolean' },
    preload: { type: 'boolean' },
    strictTransportSecurity: { anyOf: [{ type: 'boolean' }, headerString] },
    contentTypeOptions: { anyOf: [{ type: 'boolean' }, { enum: ['nosniff'] }] },
    frameOptions: { anyOf: [{ enum: [false] }, { type: 'string', pattern: '^(?:[Dd][Ee][Nn][Yy]|[Ss][Aa][Mm][Ee][Oo][Rr][Ii][Gg][Ii][Nn])$' }] },
    xssProtection: { enum: [false, '0', '1', '1; mode=block'] },
    contentSecurityPolicy: {
      anyOf: [
        { enum: [false] },
        headerString,
        {
          type: 'object',
          additionalProperties: false,
          required: ['directives'],
          properties: {
            directives: {
              type: 'object',
              additionalProperties: {
                anyOf: [
                  { type: 'string', pattern: HEADER_VALUE },
                  { type: 'array', items: { type: 'string', pattern: HEADER_VALUE } },
                ],
              },
            },
            reportOnly: { type: 'boolean' },
          },
        },
      ],
    },
    helmetDefaults: { type: 'boolean' },
    cacheControl: { anyOf: [{ enum: [false] }, headerString] },
  },
} as const

const resolve = createOptionsResolver<HstsOptions>({
  pkg: PKG,
  codePrefix: 'GH_HSTS',
  schema: hstsOptionsSchema,
  handChecked: ['logger'],
})

function fail(code: GatehouseErrorCode, message: string): never {
  throw new GatehouseConfigError(code, `${PKG}: ${message}`)
}

/** Parse a Strict-Transport-Security value as RFC 6797 writes it. */
export function parseHstsHeader(value: string): { maxAge: number; includeSubDomains: boolean; preload: boolean } {
  const seen = new Map<string, string | undefined>()
  for (const part of value.split(';')) {
    const directive = part.trim()
    if (directive === '') continue
    const eq = directive.indexOf('=')
    const name = (eq < 0 ? directive : directive.slice(0, eq)).trim().toLowerCase()
    const raw = eq < 0 ? undefined : directive.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1')
    if (seen.has(name)) {
      fail('GH_HSTS_INVALID_HEADER_VALUE', `strictTransportSecurity repeats the ${name} directive (${JSON.stringify(value)})`)
    }
    if (name !== 'max-age' && name !== 'includesubdomains' && name !== 'preload') {
      fail('GH_HSTS_INVALID_HEADER_VALUE', `strictTransportSecurity has an unknown directive ${JSON.stringify(name)} (${JSON.stringify(value)})`)
    }
    if (name !== 'max-age' && raw !== undefined) {
      fail('GH_HSTS_INVALID_HEADER_VALUE', `strictTransportSecurity directive ${name} takes no value (${JSON.stringify(value)})`)
    }
    seen.set(name, raw)
  }
  const maxAgeText = seen.get('max-age')
  if (maxAgeText === undefined || !/^\d{1,10}$/.test(maxAgeText)) {
    fail('GH_HSTS_INVALID_HEADER_VALUE', `strictTransportSecurity needs max-age=<seconds> (${JSON.stringify(value)})`)
  }
  return { maxAge: Number(maxAgeText), includeSubDomains: seen.has('includesubdomains'), preload: seen.has('preload') }
}

/** Parse a Content-Security-Policy value into helmet's directive form. */
export function parseCspHeader(value: string): Record<string, string[]> {
  const directives: Record<string, string[]> = {}
  for (const part of value.split(';')) {
    const tokens = part.trim().split(/\s+/).filter(Boolean)
    const name = tokens.shift()?.toLowerCase()
    if (name === undefined) continue
    if (name in directives) {
      fail('GH_HSTS_INVALID_HEADER_VALUE', `contentSecurityPolicy repeats the ${name} directive (${JSON.stringify(value)})`)
    }
    directives[name] = tokens
  }
  if (Object.keys(directives).length === 0) {
    fail('GH_HSTS_INVALID_HEADER_VALUE', `contentSecurityPolicy has no directives (${JSON.stringify(value)})`)
  }
  return directives
}

const DEFAULT_CSP = "default-src 'self'"

/** Validate options and return the frozen config. Throws GatehouseConfigError. */
export function resolveHstsConfig(options: HstsOptions = {}): HstsConfig {
  const o = resolve(options)
  if (o.logger !== undefined && !isLogger(o.logger)) fail('GH_HSTS_INVALID_OPTIONS', 'logger must have error, warn, info and debug methods')
  const logger = o.logger ?? noopLogger

  const fields = (['maxAge', 'includeSubDomains', 'preload'] as const).filter((k) => o[k] !== undefined)
  const sts = o.strictTransportSecurity
  if ((typeof sts === 'string' || sts === false) && fields.length > 0) {
    fail(
      'GH_HSTS_CONFLICTING_OPTIONS',
      `strictTransportSecurity (${JSON.stringify(sts)}) cannot be combined with ${fields.join(', ')}; give the header value or the fields, not both`,
    )
  }
  let hsts: HstsConfig['hsts']
  if (sts !== false) {
    const f =
      typeof sts === 'string'
        ? parseHstsHeader(sts)
        : { maxAge: o.maxAge ?? PRELOAD_MIN_MAX_AGE, includeSubDomains: o.includeSubDomains ?? true, preload: o.preload ?? false }
    if (f.preload && (f.maxAge < PRELOAD_MIN_MAX_AGE || !f.includeSubDomains)) {
      fail(
        'GH_HSTS_PRELOAD_REQUIREMENTS',
        `preload requires maxAge >= ${PRELOAD_MIN_MAX_AGE} and includeSubDomains (got maxAge ${f.maxAge}, includeSubDomains ${f.includeSubDomains})`,
      )
    }
    hsts = Object.freeze(f)
  }

  const frame = o.frameOptions === undefined ? 'deny' : o.frameOptions === false ? undefined : (o.frameOptions.toLowerCase() as 'deny' | 'sameorigin')
  const xss = o.xssProtection === undefined ? '0' : o.xssProtection === false ? undefined : o.xssProtection
  if (xss !== undefined && xss !== '0') {
    logger.warn(
      `${PKG}: xssProtection ${JSON.stringify(xss)} turns on the legacy XSS auditor, which current browsers have removed and which could itself leak data cross-site; '0' is recommended`,
    )
  }

  let csp: HstsConfig['contentSecurityPolicy']
  const c = o.contentSecurityPolicy === undefined ? DEFAULT_CSP : o.contentSecurityPolicy
  if (c !== false) {
    const directives =
      typeof c === 'string'
        ? parseCspHeader(c)
        : Object.fromEntries(Object.entries(c.directives).map(([k, v]) => [k, typeof v === 'string' ? [v] : [...v]]))
    csp = Object.freeze({ directives, reportOnly: typeof c === 'object' && c.reportOnly === true })
  }

  return Object.freeze({
    enabled: o.enabled ?? true,
    hsts,
    contentTypeOptions: o.contentTypeOptions !== false,
    frameOptions: frame,
    xssProtection: xss,
    contentSecurityPolicy: csp,
    helmetDefaults: o.helmetDefaults ?? true,
    cacheControl: o.cacheControl === false ? undefined : (o.cacheControl ?? 'no-store'),
    logger,
  })
}

/** `httpsOnly()` options. */
export interface HttpsOnlyOptions {
  /** `'refuse'` answers a plain-HTTP request with 403; `'redirect'` sends it to https. @default 'refuse' */
  action?: 'refuse' | 'redirect' | undefined
  /** The redirect status: 308 keeps the method and body, 301 may turn a POST into a GET. @default 308 */
  redirectStatus?: 301 | 308 | undefined
  /**
   * Redirect to this host (`gateway.example.com` or `gateway.example.com:8443`) instead of the
   * request's own host name. Set it when clients can reach the gateway under names you do not control.
   * @default undefined (the request's host name)
   */
  redirectHost?: string | undefined
  /** The HTTPS port used with the request's host name; 443 is left out of the URL. @default 443 */
  httpsPort?: number | undefined
  /** Receives a `security_violation` event for each plain-HTTP request. */
  onEvent?: SecurityEventHandler | undefined
  /** @default a no-op logger */
  logger?: Logger | undefined
}

export interface HttpsOnlyConfig {
  readonly action: 'refuse' | 'redirect'
  readonly redirectStatus: 301 | 308
  readonly redirectHost: string | undefined
  readonly httpsPort: number
  readonly onEvent: SecurityEventHandler | undefined
  readonly logger: Logger
}

/** A host name or IP literal, with an optional port. */
export const HOST_PATTERN = '^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\\[[0-9A-Fa-f:.]+\\])(?::\\d{1,5})?$'

export const httpsOnlyOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    action: { enum: ['refuse', 'redirect'] },
    redirectStatus: { enum: [301, 308] },
    redirectHost: { type: 'string', maxLength: 260, pattern: HOST_PATTERN },
    httpsPort: { type: 'integer', minimum: 1, maximum: 65535 },
  },
} as const

const resolveHttpsOnly = createOptionsResolver<HttpsOnlyOptions>({
  pkg: `${PKG}: httpsOnly`,
  codePrefix: 'GH_HSTS',
  schema: httpsOnlyOptionsSchema,
  handChecked: ['onEvent', 'logger'],
})

export function resolveHttpsOnlyConfig(options: HttpsOnlyOptions = {}): HttpsOnlyConfig {
  const o = resolveHttpsOnly(options)
  if (o.onEvent !== undefined && typeof o.onEvent !== 'function') fail('GH_HSTS_INVALID_OPTIONS', 'httpsOnly: onEvent must be a function')
  if (o.logger !== undefined && !isLogger(o.logger)) fail('GH_HSTS_INVALID_OPTIONS', 'httpsOnly: logger must have error, warn, info and debug methods')
  const action = o.action ?? 'refuse'
  if (action === 'refuse' && (o.redirectStatus !== undefined || o.redirectHost !== undefined || o.httpsPort !== undefined)) {
    fail('GH_HSTS_CONFLICTING_OPTIONS', "httpsOnly: redirectStatus, redirectHost and httpsPort only apply with action: 'redirect'")
  }
  return Object.freeze({
    action,
    redirectStatus: o.redirectStatus ?? 308,
    redirectHost: o.redirectHost,
    httpsPort: o.httpsPort ?? 443,
    onEvent: o.onEvent,
    logger: o.logger ?? noopLogger,
  })
}
