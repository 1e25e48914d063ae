import type { Pool } from 'pg'
import {
  GatehouseConfigError,
  createOptionsResolver,
  isLogger,
  noopLogger,
  parseDuration,
  parseSize,
  type Logger,
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

function invalidOption(message: string): GatehouseConfigError {
  return new GatehouseConfigError(StorageErrorCodes.GH_STORAGE_INVALID_OPTIONS, `${PKG}: ${message}`)
}

/** A duration or size option → a number, with the option named in the error. */
function convertOption<T>(name: string, value: unknown, fn: () => T): T {
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

