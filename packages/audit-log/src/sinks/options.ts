import type { OverflowPolicy } from './queue'

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
