import {
  GatehouseConfigError,
  PROVIDER_NAMES,
  createOptionsResolver,
  isRateLimitViolation,
  type SecurityEvent,
} from '@gatehouse/core'
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
   * @default isRateLimitViolation of @gatehouse/core: a security_violation whose result is rate_limited or starts with "rate_limit" or "quota"
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
