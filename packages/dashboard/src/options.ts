import {
  GatehouseConfigError,
  createOptionsResolver,
  isLogger,
  noopLogger,
  parseDuration,
  type Logger,
  type SecurityEvent,
  type SecurityEventHandler,
} from '@gatehouse/core'
import { DashboardErrorCodes } from './errors'

export const PKG = '@gatehouse/dashboard'

function invalidOption(message: string): GatehouseConfigError {
  return new GatehouseConfigError(DashboardErrorCodes.GH_DASHBOARD_INVALID_OPTIONS, `${PKG}: ${message}`)
}

const duration = { type: ['string', 'integer'], minimum: 0 } as const

/** Top refused addresses and keys, most refusals first. */
export interface DashboardRefusals {
  ips: Array<{ ip: string; count: number }>
  keys: Array<{ key_id: string; count: number }>
}

/** A runtime denylist entry (the shape `@gatehouse/ip-filter`'s store lists). */
export interface DashboardDenylistEntry {
  ip: string
  reason?: string
  addedAt?: Date | string
  /** null or absent: permanent. */
  expiresAt?: Date | string | null
}

/** One limit or quota and its use. */
export interface DashboardLimit {
  /** `claude tokens per minute`, `key_3f9a12bc monthly quota`. */
  name: string
  limit: number | string
  used?: number
  remaining?: number
  resetsAt?: Date | string
}

/** One finding of `gatehouse doctor`. */
export interface DashboardFinding {
  severity: 'high' | 'medium' | 'low' | 'info' | (string & {})
  message: string
  id?: string
  fix?: string
}

type Maybe<T> = T | Promise<T>

/** Where the dashboard reads what it shows. Each is called per page view; a missing one shows "not available". */
export interface DashboardData {
  recentEvents?: (limit: number) => Maybe<readonly SecurityEvent[]>
  topRefused?: () => Maybe<DashboardRefusals>
  denylist?: () => Maybe<readonly DashboardDenylistEntry[]>
  limits?: () => Maybe<readonly DashboardLimit[]>
  doctor?: () => Maybe<readonly DashboardFinding[]>
}

/** Options of `dashboardRouter()`. */
export interface DashboardOptions {
  /**
   * The management key (`management.secret_key`): at least 32 characters. It is the only way in:
   * there is no read-only open mode. Compared in constant time; never shown or logged.
   */
  secretKey: string
  /** The data providers. Required. */
  data: DashboardData
  /**
   * Mark the session cookies `Secure` (and name them `__Secure-…`). Turn off only when the gateway
   * is served over plain HTTP on a trusted host.
   * @default true
   */
  secureCookies?: boolean
  /** How long a login lasts. @default '1h' */
  sessionTtl?: string | number
  /** Sessions kept at most; the oldest is ended when a new login would exceed it. @default 100 */
  maxSessions?: number
  /** Events shown. @default 100 */
  recentLimit?: number
  /** How long a data provider may take before its section shows "not available". @default '5s' */
  dataTimeout?: string | number
  /**
   * Wrong keys from one address (all of loopback as one, IPv6 per /64), within `loginFailureWindow`,
   * before its further wrong keys are refused with 429; the right key always signs in. @default 5
   */
  maxLoginFailures?: number
  /** The window of `maxLoginFailures`, and how long the address is then refused. @default '15m' */
  loginFailureWindow?: string | number
  /** Literal secrets masked wherever they appear in the shown data. @default [] */
  knownSecrets?: string[]
  /** Where provider failures are reported. @default a no-op logger */
  logger?: Logger
  /**
   * Receives `auth_success` (login), `auth_failure` (wrong key) and `security_violation` (CSRF or
   * cross-site form, too many failures) events, with `user_id: "management"`.
   * @default undefined
   */
  onEvent?: SecurityEventHandler
}

/** The resolved, frozen configuration of a dashboard router. */
export interface DashboardConfig {
  readonly secretKey: string
  readonly data: Readonly<DashboardData>
  readonly secureCookies: boolean
  readonly sessionTtlMs: number
  readonly maxSessions: number
  readonly recentLimit: number
  readonly dataTimeoutMs: number
  readonly maxLoginFailures: number
  readonly loginFailureWindowMs: number
  readonly knownSecrets: readonly string[]
  readonly logger: Logger
  readonly onEvent: SecurityEventHandler | undefined
}

/** JSON schema of the data-shaped dashboard options (secretKey, data, logger and onEvent are checked by hand). */
export const dashboardOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    secretKey: {},
    data: {},
    secureCookies: { type: 'boolean' },
    sessionTtl: duration,
    maxSessions: { type: 'integer', minimum: 1, maximum: 100_000 },
    recentLimit: { type: 'integer', minimum: 1, maximum: 1000 },
    dataTimeout: duration,
    maxLoginFailures: { type: 'integer', minimum: 1 },
    loginFailureWindow: duration,
    knownSecrets: { type: 'array', items: { type: 'string' } },
    logger: {},
    onEvent: {},
  },
} as const

const resolveDashboardRaw = createOptionsResolver<DashboardOptions>({
  pkg: PKG,
  codePrefix: 'GH_DASHBOARD',
  schema: dashboardOptionsSchema,
  handChecked: ['secretKey', 'data', 'logger', 'onEvent'],
  secretKeys: ['secretKey', 'knownSecrets'],
})

export const MIN_DASHBOARD_KEY_CHARS = 32
const DATA_PROVIDERS = ['recentEvents', 'topRefused', 'denylist', 'limits', 'doctor'] as const

/** Validate dashboard options and return the frozen config. Throws GatehouseConfigError. */
export function resolveDashboardConfig(options: DashboardOptions): DashboardConfig {
  const raw = resolveDashboardRaw(options)
  if (typeof raw.secretKey !== 'string' || raw.secretKey.length < MIN_DASHBOARD_KEY_CHARS) {
    throw new GatehouseConfigError(
      DashboardErrorCodes.GH_DASHBOARD_WEAK_KEY,
      `${PKG}: secretKey is required and must be at least ${MIN_DASHBOARD_KEY_CHARS} characters (the management key; generate one with \`openssl rand -base64 32\`); the dashboard has no open mode`,
    )
  }
  if (typeof raw.data !== 'object' || raw.data === null) {
    throw invalidOption('data is required: an object with recentEvents, topRefused, denylist, limits and doctor functions')
  }
  const data: DashboardData = {}
  for (const [name, fn] of Object.entries(raw.data)) {
    if (!(DATA_PROVIDERS as readonly string[]).includes(name)) {
      throw invalidOption(`data.${name} is not a data provider (expected ${DATA_PROVIDERS.join(', ')})`)
    }
    if (fn === undefined) continue
    if (typeof fn !== 'function') throw invalidOption(`data.${name} must be a function (got ${JSON.stringify(typeof fn)})`)
    ;(data as Record<string, unknown>)[name] = fn
  }
  if (raw.logger !== undefined && !isLogger(raw.logger)) {
    throw invalidOption('logger must have error, warn, info and debug methods')
  }
  if (raw.onEvent !== undefined && typeof raw.onEvent !== 'function') throw invalidOption('onEvent must be a function')
  const ms = (name: 'sessionTtl' | 'dataTimeout' | 'loginFailureWindow', fallback: string): number => {
    let v: number
    try {
      v = parseDuration(raw[name] ?? fallback, name)
    } catch {
      throw invalidOption(`${name} is invalid (got ${JSON.stringify(raw[name])})`)
    }
    if (v < 1000) throw invalidOption(`${name} must be at least 1s (got ${JSON.stringify(raw[name])})`)
    return v
  }
  return Object.freeze({
    secretKey: raw.secretKey,
    data: Object.freeze(data),
    secureCookies: raw.secureCookies ?? true,
    sessionTtlMs: ms('sessionTtl', '1h'),
    maxSessions: raw.maxSessions ?? 100,
    recentLimit: raw.recentLimit ?? 100,
    dataTimeoutMs: ms('dataTimeout', '5s'),
    maxLoginFailures: raw.maxLoginFailures ?? 5,
    loginFailureWindowMs: ms('loginFailureWindow', '15m'),
    knownSecrets: Object.freeze([...(raw.knownSecrets ?? [])]),
    logger: raw.logger ?? noopLogger,
    onEvent: raw.onEvent,
  })
}
