import { createSecureContext } from 'node:tls'
import { GatehouseConfigError, parseDuration } from '@gatehouse/core'
import { AuditLogErrorCodes } from '../errors'
import type { OverflowPolicy } from './queue'

const PKG = '@gatehouse/audit-log'

/** What a sink reports when it gives lines up. */
export interface AuditSinkDrop {
  /** The sink's name. */
  sink: string
  /** Lines given up. */
  count: number
  /** `queue_full`: the queue was full; `rejected`: the collector refused the batch (HTTP 400/413/422); `closed`: still queued when close() gave up, or pushed after it. */
  reason: 'queue_full' | 'rejected' | 'closed'
}

/** PEM text or bytes. */
export type Pem = string | Buffer

/** Options every sink takes. */
export interface AuditSinkCommonOptions {
  /** Name in logs, stats and drop reports. @default `syslog://host:port` or the URL's origin and path */
  name?: string
  /** Lines held while the receiver is away; past it, lines are dropped under `overflow`. @default 10000 */
  maxQueue?: number
  /** Which line a full queue gives up. @default 'drop-oldest' */
  overflow?: OverflowPolicy
  /** First delay before a failed connect or send is tried again; doubles up to `maxRetryInterval`. @default '1s' */
  retryInterval?: string | number
  /** Longest delay between attempts. @default '30s' */
  maxRetryInterval?: string | number
  /** How long close() waits for the queue to drain before it drops the rest. @default '5s' */
  closeTimeout?: string | number
  /** CA certificate(s) the receiver's certificate must chain to (replaces the system roots). @default the system roots */
  ca?: Pem | Pem[]
  /** Client certificate for mutual TLS (with `key`). @default none */
  cert?: Pem
  /** Client private key for mutual TLS (with `cert`). **Secret**. @default none */
  key?: Pem
  /** Called when lines are dropped (never on the request path's stack). @default none */
  onDrop?: (drop: AuditSinkDrop) => void
}

/** An RFC 5424 syslog receiver over TLS (RFC 5425 octet-counting framing). */
export interface SyslogSinkOptions extends AuditSinkCommonOptions {
  type: 'syslog'
  /** Receiver host name or address. Required. */
  host: string
  /** @default 6514 */
  port?: number
  /** TLS server name checked against the certificate. @default `host` (unless it is an IP address) */
  servername?: string
  /** HOSTNAME field of each message. @default os.hostname() */
  hostname?: string
  /** APP-NAME field. @default 'gatehouse' */
  appName?: string
  /** Facility: a name (`authpriv`, `local0`…) or 0–23. @default 'authpriv' */
  facility?: string | number
  /** Give up a connection attempt after this long. @default '10s' */
  connectTimeout?: string | number
  /** Lines written in this window before a connection ended unexpectedly are sent again. @default '5s' */
  resendWindow?: string | number
}

/** An HTTPS collector that takes batches of JSON lines. */
export interface HttpsSinkOptions extends AuditSinkCommonOptions {
  type: 'https'
  /** `https://` URL the batches are POSTed to. Required. Never quoted in errors. */
  url: string
  /** Extra request headers (e.g. `Authorization`). **Secret**: never quoted or logged. @default {} */
  headers?: Record<string, string>
  /** Most lines in one request. @default 500 */
  batchSize?: number
  /** How long a line may wait for a batch to fill. @default '1s' */
  flushInterval?: string | number
  /** Per-request timeout. @default '10s' */
  timeout?: string | number
}

export type AuditSinkOptions = SyslogSinkOptions | HttpsSinkOptions

const duration = { type: ['string', 'integer'], minimum: 0 } as const
const pem = {}
const common = {
  name: { type: 'string', minLength: 1, maxLength: 200 },
  maxQueue: { type: 'integer', minimum: 1, maximum: 10_000_000 },
  overflow: { type: 'string', enum: ['drop-oldest', 'drop-newest'] },
  retryInterval: duration,
  maxRetryInterval: duration,
  closeTimeout: duration,
  ca: pem,
  cert: pem,
  key: pem,
  onDrop: {},
} as const

export const SYSLOG_FACILITIES = [
  'kern',
  'user',
  'mail',
  'daemon',
  'auth',
  'syslog',
  'lpr',
  'news',
  'uucp',
  'cron',
  'authpriv',
  'ftp',
  'ntp',
  'audit',
  'alert',
  'clock',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
] as const

/** JSON schema of a syslog sink's data-shaped options. */
export const syslogSinkOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'host'],
  properties: {
    type: { const: 'syslog' },
    ...common,
    host: { type: 'string', minLength: 1, maxLength: 255 },
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    servername: { type: 'string', minLength: 1, maxLength: 255 },
    hostname: { type: 'string', pattern: '^[\\x21-\\x7e]{1,255}$' },
    appName: { type: 'string', pattern: '^[\\x21-\\x7e]{1,48}$' },
    facility: {
      anyOf: [
        { type: 'string', enum: [...SYSLOG_FACILITIES] },
        { type: 'integer', minimum: 0, maximum: 23 },
      ],
      description: 'must be a facility name (authpriv, local0…) or 0–23',
    },
    connectTimeout: duration,
    resendWindow: duration,
  },
} as const

/** JSON schema of an HTTPS sink's data-shaped options. */
export const httpsSinkOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'url'],
  properties: {
    type: { const: 'https' },
    ...common,
    url: { type: 'string', minLength: 1 },
    headers: { type: 'object', additionalProperties: { type: 'string' } },
    batchSize: { type: 'integer', minimum: 1, maximum: 10_000 },
    flushInterval: duration,
    timeout: duration,
  },
} as const

/** JSON schema of one entry of `sinks`: a syslog or an HTTPS sink, told apart by `type`. */
export const auditSinkOptionsSchema = {
  type: 'object',
  required: ['type'],
  properties: { type: { type: 'string', enum: ['syslog', 'https'] } },
  allOf: [
    { if: { properties: { type: { const: 'syslog' } }, required: ['type'] }, then: syslogSinkOptionsSchema },
    { if: { properties: { type: { const: 'https' } }, required: ['type'] }, then: httpsSinkOptionsSchema },
  ],
} as const

interface SinkCommonConfig {
  readonly name: string
  readonly maxQueue: number
  readonly overflow: OverflowPolicy
  readonly retryIntervalMs: number
  readonly maxRetryIntervalMs: number
  readonly closeTimeoutMs: number
  readonly tls: { readonly ca?: Pem | Pem[]; readonly cert?: Pem; readonly key?: Pem }
  readonly onDrop: ((drop: AuditSinkDrop) => void) | undefined
}

export interface SyslogSinkConfig extends SinkCommonConfig {
  readonly type: 'syslog'
  readonly host: string
  readonly port: number
  readonly servername: string | undefined
  readonly hostname: string | undefined
  readonly appName: string
  readonly facility: number
  readonly connectTimeoutMs: number
  readonly resendWindowMs: number
}

export interface HttpsSinkConfig extends SinkCommonConfig {
  readonly type: 'https'
  readonly url: URL
  readonly headers: Readonly<Record<string, string>>
  readonly batchSize: number
  readonly flushIntervalMs: number
  readonly timeoutMs: number
}

export type AuditSinkConfig = SyslogSinkConfig | HttpsSinkConfig

export function invalidSink(path: string, message: string): GatehouseConfigError {
  return new GatehouseConfigError(AuditLogErrorCodes.GH_AUDIT_INVALID_OPTIONS, `${PKG}: ${path}.${message}`)
}

function ms(path: string, name: string, value: string | number | undefined, fallback: string): number {
  try {
    return parseDuration(value ?? fallback, name)
  } catch {
    throw invalidSink(
      path,
      `${name} must be a duration such as "10s", "5m" or "250ms" (got ${JSON.stringify(value)})`,
    )
  }
}

const isPem = (v: unknown): boolean => typeof v === 'string' || Buffer.isBuffer(v)

function resolveCommon(path: string, o: AuditSinkOptions, defaultName: string): SinkCommonConfig {
  if (o.ca !== undefined && !(isPem(o.ca) || (Array.isArray(o.ca) && o.ca.length > 0 && o.ca.every(isPem)))) {
    throw invalidSink(path, 'ca must be PEM text or a Buffer, or a list of them')
  }
  if (o.cert !== undefined && !isPem(o.cert)) throw invalidSink(path, 'cert must be PEM text or a Buffer')
  if (o.key !== undefined && !isPem(o.key)) throw invalidSink(path, 'key must be PEM text or a Buffer')
  if ((o.cert === undefined) !== (o.key === undefined))
    throw invalidSink(path, 'cert and key go together (mutual TLS): set both or neither')
  if (o.onDrop !== undefined && typeof o.onDrop !== 'function')
    throw invalidSink(path, 'onDrop must be a function')
  // OpenSSL skips CA text that is not a certificate; refuse it here instead of failing every handshake.
  const cas = o.ca === undefined ? [] : Array.isArray(o.ca) ? o.ca : [o.ca]
  if (cas.some((c) => !c.toString().includes('-----BEGIN CERTIFICATE-----')))
    throw invalidSink(path, 'ca is not usable PEM (no certificate in it)')
  try {
    createSecureContext({
      ...(o.ca !== undefined ? { ca: o.ca } : {}),
      ...(o.cert !== undefined ? { cert: o.cert, key: o.key } : {}),
    })
  } catch {
    // The PEM is never quoted: `key` is a secret.
    throw invalidSink(
      path,
      `${o.cert !== undefined ? 'ca, cert or key' : 'ca'} is not usable PEM (or the key does not match the certificate)`,
    )
  }
  const retryIntervalMs = Math.max(1, ms(path, 'retryInterval', o.retryInterval, '1s'))
  const maxRetryIntervalMs = Math.max(
    retryIntervalMs,
    ms(path, 'maxRetryInterval', o.maxRetryInterval, '30s'),
  )
  const tls: { ca?: Pem | Pem[]; cert?: Pem; key?: Pem } = {}
  if (o.ca !== undefined) tls.ca = o.ca
  if (o.cert !== undefined) tls.cert = o.cert
  if (o.key !== undefined) tls.key = o.key
  return {
    name: o.name ?? defaultName,
    maxQueue: o.maxQueue ?? 10_000,
    overflow: o.overflow ?? 'drop-oldest',
    retryIntervalMs,
    maxRetryIntervalMs,
    closeTimeoutMs: ms(path, 'closeTimeout', o.closeTimeout, '5s'),
    tls: Object.freeze(tls),
    onDrop: o.onDrop,
  }
}

/** Resolve one sink whose data-shaped options already passed the schema. `path` is e.g. `sinks[0]`. */
export function resolveSinkConfig(path: string, o: AuditSinkOptions): AuditSinkConfig {
  if (o.type === 'syslog') {
    const port = o.port ?? 6514
    const facility =
      o.facility === undefined
        ? 10
        : typeof o.facility === 'number'
          ? o.facility
          : SYSLOG_FACILITIES.indexOf(o.facility as (typeof SYSLOG_FACILITIES)[number])
    return Object.freeze({
      ...resolveCommon(path, o, `syslog://${o.host}:${port}`),
      type: 'syslog',
      host: o.host,
      port,
      servername: o.servername,
      hostname: o.hostname,
      appName: o.appName ?? 'gatehouse',
      facility,
      connectTimeoutMs: Math.max(1, ms(path, 'connectTimeout', o.connectTimeout, '10s')),
      resendWindowMs: ms(path, 'resendWindow', o.resendWindow, '5s'),
    })
  }
  let url: URL
  try {
    url = new URL(o.url)
  } catch {
    throw invalidSink(path, 'url is not a valid URL')
  }
  // The URL is never quoted: its query or userinfo may hold a token.
  if (url.protocol !== 'https:')
    throw invalidSink(path, 'url must be an https:// URL (audit lines never travel in clear text)')
  return Object.freeze({
    ...resolveCommon(path, o, `${url.origin}${url.pathname}`),
    type: 'https',
    url,
    headers: Object.freeze({ ...(o.headers ?? {}) }),
    batchSize: o.batchSize ?? 500,
    flushIntervalMs: ms(path, 'flushInterval', o.flushInterval, '1s'),
    timeoutMs: Math.max(1, ms(path, 'timeout', o.timeout, '10s')),
  })
}
