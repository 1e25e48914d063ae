import type { Pool } from 'pg'
import {
  GatehouseConfigError,
  createOptionsResolver,
  isLogger,
  noopLogger,
  parseDuration,
  parseSize,
  type Logger,
  type SecurityEvent,
  type SecurityEventHandler,
} from '@gatehouse/core'
import { StorageErrorCodes } from './errors'
import { resolveDatabaseUrl, type DatabaseTarget } from './url'
import { assertIdentifier } from './sql'

export const PKG = '@gatehouse/storage'

/** Options of `createStorageSink()`. Give `url` or `pool`, not both. */
export interface StorageSinkOptions {
  /**
   * The PostgreSQL URL (`postgresql://user:pass@host:5432/db?sslmode=require`). The sink creates
   * and owns a small pool. `sslmode=require` and `verify-ca` are honoured as `verify-full` (the
   * certificate and host name are checked); `prefer` and `allow`, which could fall back to
   * plaintext, are refused. Never logged: messages name only host, port and database.
   * @default undefined
   */
  url?: string
  /** A pool you own instead of `url`; `close()` leaves it open. @default undefined */
  pool?: Pool
  /**
   * The PostgreSQL schema holding the tables (lower-case letters, digits and `_`).
   * @default 'gatehouse'
   */
  schema?: string
  /** Rows written per INSERT (and per transaction). @default 100 */
  batchSize?: number
  /** How often queued rows are written (`"1s"`, `"500ms"` or milliseconds). @default '1s' */
  flushInterval?: string | number
  /**
   * Events and bodies held in memory while they wait to be written (also while the database is
   * down). Past it, new ones are dropped, counted and reported.
   * @default 10000
   */
  maxQueue?: number
  /**
   * Keep request bodies (`recordBody()`), masked, in `request_bodies`. Off, `recordBody()` does
   * nothing.
   * @default false
   */
  storeBodies?: boolean
  /** Largest body kept; a larger one is stored as `{"_truncated":true,"_bytes":N}`. @default '256kb' */
  maxBodyBytes?: string | number
  /** Bytes of bodies held in the queue at most; past it, bodies are dropped. @default '32mb' */
  maxQueueBodyBytes?: string | number
  /** Rows older than this many days are deleted. `0` keeps everything. @default 30 */
  retentionDays?: number
  /** How often retention runs (the first run follows the start-up check). @default '1h' */
  retentionInterval?: string | number
  /** How long to wait for a connection before a write counts as failed. @default '5s' */
  connectTimeout?: string | number
  /** How long one query may take before it counts as failed (own pool only). @default '30s' */
  queryTimeout?: string | number
  /** Connections in the sink's own pool. @default 2 */
  poolSize?: number
  /**
   * Run `migrate()` at start, before the first write. Needs a role that may create tables; with
   * the least-privilege writer role leave it off and run `gatehouse storage migrate` as the owner.
   * @default false
   */
  migrate?: boolean
  /**
   * Literal secrets masked wherever they appear in a row (provider keys, the management key), on
   * top of the built-in credential formats. Strings shorter than 8 characters are ignored.
   * @default []
   */
  knownSecrets?: string[]
  /** Shortest time between two reports of the same problem (drops, write failures). @default '1m' */
  reportInterval?: string | number
  /** Where failures, drops and recoveries are reported. @default a no-op logger */
  logger?: Logger
  /**
   * Receives a `security_violation` event (`result: "storage_events_dropped"`) when events are
   * dropped, at most once per `reportInterval`: a gap in the stored trail is worth an alert.
   * @default undefined
   */
  onEvent?: SecurityEventHandler
}

/** The resolved, frozen configuration of a storage sink. */
export interface StorageSinkConfig {
  readonly connectionString: string | undefined
  readonly target: DatabaseTarget
  readonly pool: Pool | undefined
  readonly schema: string
  readonly batchSize: number
  readonly flushIntervalMs: number
  readonly maxQueue: number
  readonly storeBodies: boolean
  readonly maxBodyBytes: number
  readonly maxQueueBodyBytes: number
  readonly retentionDays: number
  readonly retentionIntervalMs: number
  readonly connectTimeoutMs: number
  readonly queryTimeoutMs: number
  readonly poolSize: number
  readonly migrate: boolean
  readonly knownSecrets: readonly string[]
  readonly reportIntervalMs: number
  readonly logger: Logger
  readonly onEvent: SecurityEventHandler | undefined
}

const duration = { type: ['string', 'integer'], minimum: 0 } as const

/** JSON schema of the data-shaped sink options (url, pool, logger and onEvent are checked by hand). */
export const storageSinkOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    url: {},
    pool: {},
    schema: { type: 'string' },
    batchSize: { type: 'integer', minimum: 1, maximum: 1000 },
    flushInterval: duration,
    maxQueue: { type: 'integer', minimum: 1 },
    storeBodies: { type: 'boolean' },
    maxBodyBytes: { type: ['string', 'integer'], minimum: 1 },
    maxQueueBodyBytes: { type: ['string', 'integer'], minimum: 1 },
    retentionDays: { type: 'integer', minimum: 0, maximum: 36500 },
    retentionInterval: duration,
    connectTimeout: duration,
    queryTimeout: duration,
    poolSize: { type: 'integer', minimum: 1, maximum: 100 },
    migrate: { type: 'boolean' },
    knownSecrets: { type: 'array', items: { type: 'string' } },
    reportInterval: duration,
    logger: {},
    onEvent: {},
  },
} as const

const resolveRaw = createOptionsResolver<StorageSinkOptions>({
  pkg: PKG,
  codePrefix: 'GH_STORAGE',
  schema: storageSinkOptionsSchema,
  handChecked: ['url', 'pool', 'logger', 'onEvent'],
  secretKeys: ['url', 'knownSecrets'],
})

export function invalidOption(message: string): GatehouseConfigError {
  return new GatehouseConfigError(StorageErrorCodes.GH_STORAGE_INVALID_OPTIONS, `${PKG}: ${message}`)
}

/** A duration or size option → a number, with the option named in the error. */
export function convertOption<T>(name: string, value: unknown, fn: () => T): T {
  try {
    return fn()
  } catch {
    throw invalidOption(`${name} is invalid (got ${JSON.stringify(value)})`)
  }
}

const isPoolLike = (v: unknown): v is Pool =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as { connect?: unknown }).connect === 'function' &&
  typeof (v as { query?: unknown }).query === 'function'

/** Validate sink options and return the frozen config. Throws GatehouseConfigError. */
export function resolveStorageSinkConfig(options: StorageSinkOptions): StorageSinkConfig {
  const raw = resolveRaw(options)
  if (raw.url !== undefined && raw.pool !== undefined) throw invalidOption('give url or pool, not both')
  if (raw.url === undefined && raw.pool === undefined) {
    throw invalidOption('url is required: a postgresql:// URL (or pass your own pg Pool as pool)')
  }
  if (raw.pool !== undefined && !isPoolLike(raw.pool)) throw invalidOption('pool must be a pg Pool')
  if (raw.logger !== undefined && !isLogger(raw.logger)) {
    throw invalidOption('logger must have error, warn, info and debug methods')
  }
  if (raw.onEvent !== undefined && typeof raw.onEvent !== 'function') throw invalidOption('onEvent must be a function')
  const schema = assertIdentifier(raw.schema ?? 'gatehouse', 'schema')
  const resolved = raw.url !== undefined ? resolveDatabaseUrl(raw.url, 'url') : undefined
  const ms = (name: keyof StorageSinkOptions, fallback: string): number =>
    convertOption(name, raw[name], () => parseDuration((raw[name] as string | number | undefined) ?? fallback, name))
  const bytes = (name: keyof StorageSinkOptions, fallback: string): number =>
    convertOption(name, raw[name], () => parseSize((raw[name] as string | number | undefined) ?? fallback, name))
  const flushIntervalMs = ms('flushInterval', '1s')
  if (flushIntervalMs < 1) throw invalidOption(`flushInterval must be at least 1ms (got ${JSON.stringify(raw.flushInterval)})`)
  const retentionIntervalMs = ms('retentionInterval', '1h')
  if (retentionIntervalMs < 1000) {
    throw invalidOption(`retentionInterval must be at least 1s (got ${JSON.stringify(raw.retentionInterval)})`)
  }
  const maxBodyBytes = bytes('maxBodyBytes', '256kb')
  const maxQueueBodyBytes = bytes('maxQueueBodyBytes', '32mb')
  if (maxBodyBytes < 1 || maxQueueBodyBytes < 1) throw invalidOption('maxBodyBytes and maxQueueBodyBytes must be at least 1 byte')
  return Object.freeze({
    connectionString: resolved?.connectionString,
    target: resolved?.target ?? Object.freeze({ description: 'the given pool', sslmode: undefined }),
    pool: raw.pool,
    schema,
    batchSize: raw.batchSize ?? 100,
    flushIntervalMs,
    maxQueue: raw.maxQueue ?? 10_000,
    storeBodies: raw.storeBodies ?? false,
    maxBodyBytes,
    maxQueueBodyBytes,
    retentionDays: raw.retentionDays ?? 30,
    retentionIntervalMs,
    connectTimeoutMs: Math.max(1, ms('connectTimeout', '5s')),
    queryTimeoutMs: Math.max(1, ms('queryTimeout', '30s')),
    poolSize: raw.poolSize ?? 2,
    migrate: raw.migrate ?? false,
    knownSecrets: Object.freeze([...(raw.knownSecrets ?? [])]),
    reportIntervalMs: ms('reportInterval', '1m'),
    logger: raw.logger ?? noopLogger,
    onEvent: raw.onEvent,
  })
}

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
  codePrefix: 'GH_STORAGE',
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
      StorageErrorCodes.GH_STORAGE_WEAK_DASHBOARD_KEY,
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
    const v = convertOption(name, raw[name], () => parseDuration(raw[name] ?? fallback, name))
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
