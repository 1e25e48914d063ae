import {
  GatehouseConfigError,
  cidrMatcher,
  createOptionsResolver,
  isCidr,
  isLoopback,
  parseDuration,
  type Logger,
  type SecurityEvent,
} from '@gatehouse/core'
import { AlertsErrorCodes } from './errors'

export const PKG = '@gatehouse/alerts'

/** The actions an alert rule can take (the seed's two). */
export const ALERT_ACTIONS = ['notify_admin', 'block_ip'] as const
export type AlertAction = (typeof ALERT_ACTIONS)[number]

/** One alert rule, as in the `alerts:` config list. */
export interface AlertRule {
  /** Shown in notifications and logs; unique. */
  name: string
  /** `<metric> > N` or `<metric> >= N`; metric one of ALERT_METRICS. */
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
  /**
   * Which events count as rate-limit violations.
   * @default isRateLimitViolation of @gatehouse/core: a security_violation whose result is rate_limited or starts with "rate_limit" or "quota"
   */
  isRateLimitViolation?: (event: SecurityEvent) => boolean
  /**
   * Addresses and CIDRs block_ip never blocks, besides loopback (always spared): trusted proxies,
   * a NAT every client shares. Their alerts are logged, not acted on. @default []
   */
  neverBlock?: string[]
  /** Where fired alerts and delivery failures are reported. @default a no-op logger */
  logger?: Logger
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
  codePrefix: 'GH_ALERTS',
  schema: alertEngineOptionsSchema,
  handChecked: ['onBlockIp', 'store', 'isRateLimitViolation', 'logger'],
  secretKeys: ['webhookUrl'],
})

export function invalid(message: string): GatehouseConfigError {
  return new GatehouseConfigError(AlertsErrorCodes.GH_ALERTS_INVALID_OPTIONS, `${PKG}: ${message}`)
}

/** parseDuration with this package's error code and message. */
export function durationMs(value: string | number, name: string): number {
  try {
    return parseDuration(value, name)
  } catch {
    throw invalid(`${name} must be a duration such as "5m", "30s" or "500ms" (got ${JSON.stringify(value)})`)
  }
}

/**
 * A test for the addresses block_ip never blocks: loopback always, and each address or CIDR of
 * `neverBlock` (IPv4-mapped IPv6 addresses compare as IPv4). Throws GH_ALERTS_INVALID_OPTIONS
 * naming an entry that is not an address or CIDR.
 */
export function neverBlockMatcher(neverBlock: readonly string[]): (ip: string) => boolean {
  neverBlock.forEach((entry, i) => {
    if (!isCidr(entry)) throw invalid(`neverBlock[${i}] must be an IP address or CIDR (got ${JSON.stringify(entry)})`)
  })
  const listed = cidrMatcher(neverBlock)
  return (ip) => isLoopback(ip) || listed(ip)
}
