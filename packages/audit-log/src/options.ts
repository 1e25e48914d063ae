import {
  SECURITY_EVENT_TYPES,
  GatehouseConfigError,
  createOptionsResolver,
  isLogger,
  parseDuration,
  parseSize,
  type Logger,
  type SecurityEventType,
} from '@gatehouse/core'
import type { KeyObject } from 'node:crypto'
import { resolveSigningKey } from './checkpoint'
import { AuditLogErrorCodes } from './errors'
import { keyForms, resolveAuditKey } from './key'
import { resolveSinkConfig, type AuditSinkConfig } from './sinks/config'
import { auditSinkOptionsSchema, type AuditSinkOptions } from './sinks/options'

const PKG = '@gatehouse/audit-log'

/** Options of `createAuditLogger()`. */
export interface AuditLogOptions {
  /**
   * The active audit file. Its directory is created (mode 0700) when missing; the file is created
   * with mode 0600. Rotated files are kept beside it as `<name>.<YYYY-MM-DD>.<n><ext>`.
   * @default './logs/audit.log'
   */
  file?: string
  /**
   * The HMAC-SHA256 key of the hash chain: at least 32 bytes (a Buffer, or a string used as its
   * UTF-8 bytes, e.g. the output of `openssl rand -hex 32`). Required. Never written anywhere.
   */
  key: string | Buffer
  /**
   * Which event types are written; the others are counted as filtered.
   * @default all seven: auth_success, auth_failure, token_refresh, config_change, credential_access, provider_request, security_violation
   */
  events?: SecurityEventType[]
  /**
   * Rotate the active file before it would grow past this size (`"100mb"`, `"512kb"` or bytes).
   * `0` turns size rotation off.
   * @default '100mb'
   */
  maxSize?: string | number
  /**
   * Rotate the active file when the UTC day changes.
   * @default true
   */
  daily?: boolean
  /**
   * Rotate the active file at the first write once its first line is this old (`"1h"`, `"7d"` or
   * ms), on top of `maxSize` and `daily`. `0` turns age rotation off.
   * @default 0
   */
  maxFileAge?: string | number
  /**
   * Which rotated files are kept; older ones are deleted, after a chained retention record names
   * where they ended (so `verifyAuditLog(..., { whole: true })` accepts the kept log's start).
   * The active file is never deleted. Without it, every rotated file is kept.
   * @default { maxFiles: 0, maxAge: 0 } (keep everything)
   */
  retention?: AuditRetentionOptions
  /**
   * Literal secrets masked wherever they appear (configured provider keys, the encryption key),
   * on top of the built-in credential formats. Strings shorter than 8 characters are ignored.
   * @default []
   */
  knownSecrets?: string[]
  /**
   * Largest line written, in bytes. A larger event keeps its top-level fields and has `details`
   * replaced by `{"_truncated":true,"_bytes":N}`.
   * @default 65536
   */
  maxLineBytes?: number
  /**
   * Events held in memory while the file cannot be written. Past it, new events are dropped,
   * counted and reported.
   * @default 100000
   */
  maxQueuedEvents?: number
  /**
   * First delay before writing is retried after a failure; it doubles on each failure up to 30 s.
   * @default '1s'
   */
  retryInterval?: string | number
  /**
   * Repeated refusals (auth failures, security violations, access-log lines with a 4xx or 5xx
   * status) of one kind from one address within this interval become one line with a count: the
   * first is written in full, the repeats as `details: {aggregated: true, count, first_at,
   * last_at}` when the interval ends. `0` writes every event. The reference server sets 10 s.
   * @default 0
   */
  aggregateInterval?: string | number
  /**
   * Where every written line is also shipped, as it is written: syslog over TLS and/or HTTPS
   * collectors (see the README). Shipping never delays a request or the local write.
   * @default []
   */
  sinks?: AuditSinkOptions[]
  /**
   * Signed checkpoints (seq and hash of the head, time) written to the file and to every sink at
   * an interval and at close. On by default when `sinks` are set.
   * @default { enabled: sinks.length > 0, interval: '1m' }
   */
  checkpoints?: AuditCheckpointOptions
  /** Receives write failures (logger.error is called too). @default undefined */
  onWriteError?: (err: Error) => void
  /** Where write failures and recoveries are reported. @default a no-op logger */
  logger?: Logger
}

/** Options of the signed checkpoints. */
export interface AuditCheckpointOptions {
  /** @default true when `sinks` are set, else false */
  enabled?: boolean
  /** Time between checkpoints (one is skipped when nothing was written since the last). `0`: only at close. @default '1m' */
  interval?: string | number
  /**
   * Sign with Ed25519 under this private key (PEM or KeyObject) instead of HMAC-SHA256 under the
   * audit key, so checkpoints can be checked without the audit key. **Secret**. @default none
   */
  signingKey?: string | Buffer | KeyObject
  /** An id carried and signed in every checkpoint: set it when several logs ship to one collector. @default none */
  logId?: string
}

/** How many rotated audit files are kept, and for how long. */
export interface AuditRetentionOptions {
  /** Rotated files kept (the newest); the active file is not counted. `0`: no limit. @default 0 */
  maxFiles?: number
  /** Rotated files whose last line was written longer ago than this are deleted (`"30d"`). `0`: no limit. @default 0 */
  maxAge?: string | number
}

/** The resolved, frozen configuration of an audit logger. */
export interface AuditLogConfig {
  readonly file: string
  readonly key: Buffer
  readonly events: ReadonlySet<SecurityEventType>
  readonly maxSize: number
  readonly daily: boolean
  readonly maxFileAgeMs: number
  /** Undefined: every rotated file is kept. */
  readonly retention: { readonly maxFiles: number; readonly maxAgeMs: number } | undefined
  readonly knownSecrets: readonly string[]
  readonly maxLineBytes: number
  readonly maxQueuedEvents: number
  readonly retryIntervalMs: number
  readonly aggregateIntervalMs: number
  readonly sinks: readonly AuditSinkConfig[]
  readonly checkpoints: {
    readonly enabled: boolean
    readonly intervalMs: number
    readonly signingKey: KeyObject | undefined
    readonly logId: string | undefined
  }
  readonly onWriteError: ((err: Error) => void) | undefined
  readonly logger: Logger
}

/** JSON schema of the data-shaped audit-log options (function and key options are checked by hand). */
export const auditLogOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    file: { type: 'string', minLength: 1 },
    key: {},
    events: { type: 'array', uniqueItems: true, items: { type: 'string', enum: [...SECURITY_EVENT_TYPES] } },
    maxSize: { type: ['string', 'integer'], minimum: 0 },
    daily: { type: 'boolean' },
    maxFileAge: { type: ['string', 'integer'], minimum: 0 },
    retention: {
      type: 'object',
      additionalProperties: false,
      properties: {
        maxFiles: { type: 'integer', minimum: 0, maximum: 1_000_000 },
        maxAge: { type: ['string', 'integer'], minimum: 0 },
      },
    },
    knownSecrets: { type: 'array', items: { type: 'string' } },
    maxLineBytes: { type: 'integer', minimum: 1024, maximum: 1024 * 1024 },
    maxQueuedEvents: { type: 'integer', minimum: 1 },
    retryInterval: { type: ['string', 'integer'], minimum: 1 },
    aggregateInterval: { type: ['string', 'integer'], minimum: 0 },
    sinks: { type: 'array', maxItems: 16, items: auditSinkOptionsSchema },
    checkpoints: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean' },
        interval: { type: ['string', 'integer'], minimum: 0 },
        signingKey: {},
        logId: { type: 'string', pattern: '^[\\x21-\\x7e]{1,128}$' },
      },
    },
    onWriteError: {},
    logger: {},
  },
} as const

const resolveRaw = createOptionsResolver<AuditLogOptions>({
  pkg: PKG,
  codePrefix: 'GH_AUDIT',
  schema: auditLogOptionsSchema,
  handChecked: ['key', 'onWriteError', 'logger'],
  secretKeys: ['key', 'knownSecrets', 'headers', 'url', 'signingKey'],
})

export function invalid(message: string): GatehouseConfigError {
  return new GatehouseConfigError(AuditLogErrorCodes.GH_AUDIT_INVALID_OPTIONS, `${PKG}: ${message}`)
}

function convert<T>(name: string, value: unknown, fn: () => T): T {
  try {
    return fn()
  } catch {
    throw invalid(`${name} is invalid (got ${JSON.stringify(value)})`)
  }
}

/** A duration option where `0` (or absent) means off. */
function optionalMs(name: string, value: string | number | undefined): number {
  if (value === undefined || value === 0) return 0
  return convert(name, value, () => parseDuration(value, name))
}

/** Validate audit-log options and return the frozen config. Throws GatehouseConfigError. */
export function resolveAuditLogConfig(options: AuditLogOptions): AuditLogConfig {
  const raw = resolveRaw(options)
  const key = resolveAuditKey(raw.key)
  if (raw.onWriteError !== undefined && typeof raw.onWriteError !== 'function') {
    throw invalid('onWriteError must be a function')
  }
  if (raw.logger !== undefined && !isLogger(raw.logger)) {
    throw invalid('logger must have error, warn, info and debug methods')
  }
  const maxSize = convert('maxSize', raw.maxSize, () => parseSize(raw.maxSize ?? '100mb', 'maxSize'))
  const retryIntervalMs = convert('retryInterval', raw.retryInterval, () =>
    parseDuration(raw.retryInterval ?? '1s', 'retryInterval'),
  )
  if (retryIntervalMs < 1) throw invalid(`retryInterval must be at least 1ms (got ${JSON.stringify(raw.retryInterval)})`)
  const aggregateIntervalMs = optionalMs('aggregateInterval', raw.aggregateInterval)
  const maxFileAgeMs = optionalMs('maxFileAge', raw.maxFileAge)
  const maxFiles = raw.retention?.maxFiles ?? 0
  const retentionMaxAgeMs = optionalMs('retention.maxAge', raw.retention?.maxAge)
  const sinks = (raw.sinks ?? []).map((o, i) => resolveSinkConfig(`sinks[${i}]`, o))
  const cp = raw.checkpoints ?? {}
  const checkpoints = Object.freeze({
    enabled: cp.enabled ?? sinks.length > 0,
    intervalMs: cp.interval === undefined ? 60_000 : convert('checkpoints.interval', cp.interval, () => parseDuration(cp.interval!, 'checkpoints.interval')),
    signingKey: cp.signingKey === undefined ? undefined : resolveSigningKey(cp.signingKey, 'checkpoints.signingKey'),
    logId: cp.logId,
  })
  return Object.freeze({
    file: raw.file ?? './logs/audit.log',
    key,
    events: new Set(raw.events ?? SECURITY_EVENT_TYPES),
    maxSize,
    daily: raw.daily ?? true,
    maxFileAgeMs,
    retention: maxFiles > 0 || retentionMaxAgeMs > 0 ? Object.freeze({ maxFiles, maxAgeMs: retentionMaxAgeMs }) : undefined,
    knownSecrets: Object.freeze([...(raw.knownSecrets ?? []), ...keyForms(key)]),
    maxLineBytes: raw.maxLineBytes ?? 65_536,
    maxQueuedEvents: raw.maxQueuedEvents ?? 100_000,
    retryIntervalMs,
    aggregateIntervalMs,
    sinks: Object.freeze(sinks),
    checkpoints,
    onWriteError: raw.onWriteError,
    logger: raw.logger ?? noopLoggerCopy(),
  })
}

export function noopLoggerCopy(): Logger {
  const noop = (): void => undefined
  return { error: noop, warn: noop, info: noop, debug: noop }
}
