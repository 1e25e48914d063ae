import {
  GatehouseConfigError,
  HOST_NAME_PATTERN,
  PROVIDER_NAMES,
  createOptionsResolver,
  isLogger,
  isLoopback,
  noopLogger,
  parseDuration,
  type Logger,
  type SecurityEvent,
} from '@gatehouse/core'
import ipaddr from 'ipaddr.js'
import { MetricsErrorCodes } from './errors'

export const PKG = '@gatehouse/metrics'

/** Options of `createMetrics()`. */
export interface MetricsOptions {
  /**
   * Prefix of every Gatehouse metric name. `cliproxy_` reproduces the names of the cliproxyapi++
   * dashboards.
   * @default 'gatehouse_'
   */
  prefix?: string
  /**
   * Most distinct values a client-fed label (the `ip` of `rate_limit_violations_total`) takes;
   * later values count under `other`.
   * @default 1000
   */
  maxLabelValues?: number
  /**
   * Provider names accepted as `provider` label values besides claude, openai and gemini; any
   * other name counts under `other`.
   * @default []
   */
  providers?: string[]
  /**
   * Buckets of `request_duration_seconds`, in seconds.
   * @default [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]
   */
  durationBuckets?: number[]
  /**
   * Also export prom-client's process metrics (CPU, memory, event loop lag, GC), unprefixed.
   * @default true
   */
  processMetrics?: boolean
  /** Literal secrets masked in the exposition text (defence in depth). @default [] */
  knownSecrets?: string[]
  /**
   * Which events count as rate-limit violations.
   * @default isRateLimitViolation: a security_violation whose result starts with "rate_limit" or "quota"
   */
  isRateLimitViolation?: (event: SecurityEvent) => boolean
}

export interface MetricsConfig {
  readonly prefix: string
  readonly maxLabelValues: number
  readonly providers: ReadonlySet<string>
  readonly durationBuckets: readonly number[]
  readonly processMetrics: boolean
  readonly knownSecrets: readonly string[]
  readonly isRateLimitViolation: (event: SecurityEvent) => boolean
}

/**
 * The default rate-limit test: a `security_violation` whose `result` is `rate_limited` or starts
 * with `rate_limit` or `quota` (`rate_limit_exceeded`, `quota_exceeded`).
 */
export function isRateLimitViolation(event: SecurityEvent): boolean {
  return (
    event.event_type === 'security_violation' &&
    typeof event.result === 'string' &&
    (event.result === 'rate_limited' || event.result.startsWith('rate_limit') || event.result.startsWith('quota'))
  )
}

/**
 * A refusal by a limit that is not the caller's alone, whatever its `result` says: the limiter
 * marked it `own_limit: false` (a global, provider or quota bucket, a store outage).
 */
export function isSharedLimitRefusal(event: SecurityEvent): boolean {
  const details = event.details as Record<string, unknown> | undefined
  return details?.own_limit === false
}

/**
 * A test for the addresses block_ip never blocks: loopback always, and each address or CIDR of
 * `neverBlock` (IPv4-mapped IPv6 addresses compare as IPv4). Throws GH_METRICS_INVALID_OPTIONS
 * naming an entry that is not an address or CIDR.
 */
export function neverBlockMatcher(neverBlock: readonly string[]): (ip: string) => boolean {
  const ranges = neverBlock.map((entry, i) => {
    try {
      return entry.includes('/') ? ipaddr.parseCIDR(entry) : ([ipaddr.process(entry), entry.includes(':') ? 128 : 32] as [ipaddr.IPv4 | ipaddr.IPv6, number])
    } catch {
      throw invalid(`neverBlock[${i}] must be an IP address or CIDR (got ${JSON.stringify(entry)})`)
    }
  })
  return (ip) => {
    if (isLoopback(ip)) return true
    let addr: ipaddr.IPv4 | ipaddr.IPv6
    try {
      addr = ipaddr.process(ip)
    } catch {
      return false
    }
    return ranges.some(([range, bits]) => {
      const r = range.kind() === 'ipv6' && (range as ipaddr.IPv6).isIPv4MappedAddress() ? [(range as ipaddr.IPv6).toIPv4Address(), Math.max(0, bits - 96)] as const : [range, bits] as const
      return addr.kind() === r[0].kind() && addr.match(r[0] as never, r[1])
    })
  }
}

export const metricsOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    prefix: { type: 'string', pattern: '^(?:[a-zA-Z_][a-zA-Z0-9_]*)?$', maxLength: 64 },
    maxLabelValues: { type: 'integer', minimum: 1, maximum: 100_000 },
    providers: { type: 'array', items: { type: 'string', pattern: '^[a-z0-9_-]{1,32}$' } },
    durationBuckets: { type: 'array', minItems: 1, items: { type: 'number', exclusiveMinimum: 0 } },
    processMetrics: { type: 'boolean' },
    knownSecrets: { type: 'array', items: { type: 'string' } },
    isRateLimitViolation: {},
  },
} as const

const resolveMetricsRaw = createOptionsResolver<MetricsOptions>({
  pkg: PKG,
  codePrefix: 'GH_METRICS',
  schema: metricsOptionsSchema,
  handChecked: ['isRateLimitViolation'],
  secretKeys: ['knownSecrets'],
})

export function invalid(message: string): GatehouseConfigError {
  return new GatehouseConfigError(MetricsErrorCodes.GH_METRICS_INVALID_OPTIONS, `${PKG}: ${message}`)
}

export function resolveMetricsConfig(options: MetricsOptions): MetricsConfig {
  const raw = resolveMetricsRaw(options)
  if (raw.isRateLimitViolation !== undefined && typeof raw.isRateLimitViolation !== 'function') {
    throw invalid('isRateLimitViolation must be a function')
  }
  const buckets = [...(raw.durationBuckets ?? [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300])]
  for (let i = 1; i < buckets.length; i++) {
    if (buckets[i]! <= buckets[i - 1]!) throw invalid(`durationBuckets must be increasing (got ${JSON.stringify(raw.durationBuckets)})`)
  }
  return Object.freeze({
    prefix: raw.prefix ?? 'gatehouse_',
    maxLabelValues: raw.maxLabelValues ?? 1000,
    providers: new Set<string>([...PROVIDER_NAMES, ...(raw.providers ?? [])]),
    durationBuckets: Object.freeze(buckets),
    processMetrics: raw.processMetrics ?? true,
    knownSecrets: Object.freeze([...(raw.knownSecrets ?? [])]),
    isRateLimitViolation: raw.isRateLimitViolation ?? isRateLimitViolation,
  })
}

/** Options of `startMetricsServer()`. */
export interface MetricsServerOptions {
  /** What to serve: the object `createMetrics()` returned. Required. */
  metrics: { render(): Promise<string>; readonly contentType: string }
  /**
   * Address to listen on. Anything but loopback exposes the metrics (client addresses among them)
   * to the network, and is logged at warn.
   * @default '127.0.0.1'
   */
  host?: string
  /** Port; 0 picks a free one. @default 9090 */
  port?: number
  /** Path of the metrics endpoint; every other path answers 404. @default '/metrics' */
  path?: string
  /**
   * On a loopback address, the Host names answered besides IP literals, `localhost` and
   * `*.localhost`, with any port and in any case (a request with any other Host, or none, gets 421:
   * a DNS-rebinding page cannot read the metrics). Names only: no port, no scheme, no trailing dot.
   * Not applied on a non-loopback address. @default []
   */
  allowedHosts?: string[]
  /** Where a listen warning and render failures go. @default a no-op logger */
  logger?: Logger
}

export interface MetricsServerConfig {
  readonly metrics: MetricsServerOptions['metrics']
  readonly host: string
  readonly port: number
  readonly path: string
  readonly allowedHosts: readonly string[]
  readonly logger: Logger
}

export const metricsServerOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    metrics: {},
    host: { type: 'string', minLength: 1 },
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    path: { type: 'string', pattern: '^/[A-Za-z0-9/_.-]*$' },
    allowedHosts: { type: 'array', items: { type: 'string', maxLength: 253, pattern: HOST_NAME_PATTERN } },
    logger: {},
  },
} as const

const resolveServerRaw = createOptionsResolver<MetricsServerOptions>({
  pkg: PKG,
  codePrefix: 'GH_METRICS',
  schema: metricsServerOptionsSchema,
  handChecked: ['metrics', 'logger'],
})

export function resolveMetricsServerConfig(options: MetricsServerOptions): MetricsServerConfig {
  const raw = resolveServerRaw(options)
  const m = raw.metrics as unknown
  if (m === null || typeof m !== 'object' || typeof (m as { render?: unknown }).render !== 'function') {
    throw invalid('metrics is required: the object createMetrics() returned')
  }
  if (raw.logger !== undefined && !isLogger(raw.logger)) throw invalid('logger must have error, warn, info and debug methods')
  return Object.freeze({
    metrics: raw.metrics,
    host: raw.host ?? '127.0.0.1',
    port: raw.port ?? 9090,
    path: raw.path ?? '/metrics',
    allowedHosts: Object.freeze([...(raw.allowedHosts ?? [])]),
    logger: raw.logger ?? noopLogger,
  })
}

/** The actions an alert rule can take (the seed's two). */
export const ALERT_ACTIONS = ['notify_admin', 'block_ip'] as const
export type AlertAction = (typeof ALERT_ACTIONS)[number]

/** One alert rule, as in the `alerts:` config list. */
export interface AlertRule {
  /** Shown in notifications and logs; unique. */
  name: string
  /** `<metric> > N` or `<metric> >= N`; metric one of auth_failures, rate_limit_violations, security_events. */
  condition: string
  /** The sliding window the condition is counted over (`"5m"`, `"1m"`, `"30s"`). */
  duration: string | number
  /** `notify_admin` posts to the webhook; `block_ip` calls `onBlockIp` with the offending address. */
  action: AlertAction
  /** How long a `block_ip` entry lasts. @default '1h' */
  ttl?: string | number
}

/** The webhook `notify_admin` posts to. */
export interface NotifyOptions {
  /** A Slack-compatible incoming-webhook URL (`https://hooks.slack.com/services/…`). A secret. */
  webhookUrl?: string
  /** Retries after a failed delivery (network error, 5xx, 429). @default 4 */
  retries?: number
  /** Delay before the first retry; doubles on each retry. @default '500ms' */
  retryDelay?: string | number
  /** Time limit of one delivery attempt. @default '5s' */
  timeout?: string | number
}

/** What `block_ip` hands to `onBlockIp`. */
export interface BlockRequest {
  ip: string
  ttlSeconds: number
  reason: string
  rule: string
}

/** Options of `createAlertEngine()`. */
export interface AlertEngineOptions {
  /** The rules (`alerts:`). @default [] */
  rules?: AlertRule[]
  /** The webhook for notify_admin (`notify:`). Required when a rule notifies. */
  notify?: NotifyOptions
  /** Called by block_ip rules; the server adds the address to the ip-filter runtime denylist. */
  onBlockIp?: (block: BlockRequest) => void | Promise<void>
  /** Where the sliding windows live. @default a new MemoryAlertStore */
  store?: AlertStore
  /** Which events count as rate-limit violations. @default isRateLimitViolation */
  isRateLimitViolation?: (event: SecurityEvent) => boolean
  /**
   * Addresses and CIDRs block_ip never blocks, besides loopback (always spared): trusted proxies,
   * a NAT every client shares. Their alerts are logged, not acted on. @default []
   */
  neverBlock?: string[]
  /** Where fired alerts and delivery failures are reported. @default a no-op logger */
  logger?: Logger
}

/** Outcome of recording one occurrence in a window. */
export interface AlertHit {
  /** Occurrences in the window (capped at `min`). */
  count: number
  /** True for exactly one hit per window once `count >= min`: the caller fires. */
  fire: boolean
}

/**
 * Sliding-window counters, one per rule and subject. `hit` records one occurrence at `now` and
 * says whether the rule fires: count in (now - windowMs, now] reaches `min`, and it has not fired
 * for this subject within the last `windowMs`.
 */
export interface AlertStore {
  hit(ruleId: string, subject: string, now: number, windowMs: number, min: number): AlertHit | Promise<AlertHit>
  shutdown(): Promise<void>
}

export const alertRuleSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'condition', 'duration', 'action'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    condition: { type: 'string', minLength: 1, maxLength: 200 },
    duration: { type: ['string', 'integer'] },
    action: { type: 'string', enum: [...ALERT_ACTIONS] },
    ttl: { type: ['string', 'integer'] },
  },
} as const

export const alertEngineOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    rules: { type: 'array', items: alertRuleSchema },
    notify: {
      type: 'object',
      additionalProperties: false,
      properties: {
        webhookUrl: { type: 'string' },
        retries: { type: 'integer', minimum: 0, maximum: 10 },
        retryDelay: { type: ['string', 'integer'] },
        timeout: { type: ['string', 'integer'] },
      },
    },
    onBlockIp: {},
    store: {},
    isRateLimitViolation: {},
    neverBlock: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 64 } },
    logger: {},
  },
} as const

export const resolveAlertRaw = createOptionsResolver<AlertEngineOptions>({
  pkg: PKG,
  codePrefix: 'GH_METRICS',
  schema: alertEngineOptionsSchema,
  handChecked: ['onBlockIp', 'store', 'isRateLimitViolation', 'logger'],
  secretKeys: ['webhookUrl'],
})

/** parseDuration with this package's error code and message. */
export function durationMs(value: string | number, name: string): number {
  try {
    return parseDuration(value, name)
  } catch {
    throw invalid(`${name} must be a duration such as "5m", "30s" or "500ms" (got ${JSON.stringify(value)})`)
  }
}
