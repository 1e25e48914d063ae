import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { createMasker, type SecurityEvent, type SecurityEventHandler } from '@gatehouse/core'
import { BoundedLabel, eventTypeLabel, ipLabel, providerLabel, statusLabel } from './labels'
import { resolveMetricsConfig, type MetricsOptions } from './options'

/** One finished request, as `observeRequest` takes it. */
export interface RequestObservation {
  provider?: string | undefined
  status: number
  durationSeconds: number
  usage?: { inputTokens?: number | undefined; outputTokens?: number | undefined } | undefined
}

/** The metrics of one Gatehouse instance, in their own prom-client Registry. */
export interface GatehouseMetrics {
  /** The registry (never prom-client's global one). */
  readonly registry: Registry
  /** The names of the Gatehouse metrics, prefix included (process metrics not listed). */
  readonly names: {
    readonly authFailures: string
    readonly rateLimitViolations: string
    readonly securityEvents: string
    readonly requests: string
    readonly requestDuration: string
    readonly upstreamTokens: string
    readonly postureFindings: string
  }
  /** Count a security event; `provider_request` events also feed the request metrics. Never throws. */
  readonly recordEvent: SecurityEventHandler
  /** Count one finished request (when not fed through `provider_request` events). Never throws. */
  readonly observeRequest: (observation: RequestObservation) => void
  /** Set the security-posture findings (`gatehouse doctor`) by severity. Never throws. */
  readonly setPostureFindings: (counts: Partial<Record<'high' | 'medium' | 'low', number>>) => void
  /** The Prometheus exposition text, passed through the masker. */
  render(): Promise<string>
  readonly contentType: string
}

const finite = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined)

/**
 * Create the security metrics: `<prefix>auth_failures_total{provider}`,
 * `<prefix>rate_limit_violations_total{ip}`, `<prefix>security_events_total{event_type}`,
 * `<prefix>requests_total{provider,status}`, `<prefix>request_duration_seconds{provider}`,
 * `<prefix>upstream_tokens_total{provider,direction}`, and prom-client's process metrics. Every
 * label has a bounded set of values.
 */
export function createMetrics(options: MetricsOptions = {}): GatehouseMetrics {
  const config = resolveMetricsConfig(options)
  const registry = new Registry()
  const p = config.prefix
  const names = Object.freeze({
    authFailures: `${p}auth_failures_total`,
    rateLimitViolations: `${p}rate_limit_violations_total`,
    securityEvents: `${p}security_events_total`,
    requests: `${p}requests_total`,
    requestDuration: `${p}request_duration_seconds`,
    upstreamTokens: `${p}upstream_tokens_total`,
    postureFindings: `${p}security_posture_findings`,
  })
  const authFailures = new Counter({
    name: names.authFailures,
    help: 'Total authentication failures',
    labelNames: ['provider'] as const,
    registers: [registry],
  })
  const rateLimitViolations = new Counter({
    name: names.rateLimitViolations,
    help: 'Total rate limit violations',
    labelNames: ['ip'] as const,
    registers: [registry],
  })
  const securityEvents = new Counter({
    name: names.securityEvents,
    help: 'Total security events',
    labelNames: ['event_type'] as const,
    registers: [registry],
  })
  const requests = new Counter({
    name: names.requests,
    help: 'Total requests answered, by provider and status code',
    labelNames: ['provider', 'status'] as const,
    registers: [registry],
  })
  const duration = new Histogram({
    name: names.requestDuration,
    help: 'Time to answer a request, in seconds',
    labelNames: ['provider'] as const,
    buckets: [...config.durationBuckets],
    registers: [registry],
  })
  const tokens = new Counter({
    name: names.upstreamTokens,
    help: 'Tokens the upstream reported using, by direction (input, output)',
    labelNames: ['provider', 'direction'] as const,
    registers: [registry],
  })
  const posture = new Gauge({
    name: names.postureFindings,
    help: 'Risky settings found by the security-posture checks (gatehouse doctor), by severity',
    labelNames: ['severity'] as const,
    registers: [registry],
  })
  const setPostureFindings = (counts: Partial<Record<'high' | 'medium' | 'low', number>>): void => {
    for (const severity of ['high', 'medium', 'low'] as const) posture.set({ severity }, finite(counts[severity]) ?? 0)
  }
  if (config.processMetrics) collectDefaultMetrics({ register: registry })

  const ips = new BoundedLabel(config.maxLabelValues)
  const masker = createMasker({ knownSecrets: config.knownSecrets })

  const observeRequest = (o: RequestObservation): void => {
    try {
      const provider = providerLabel(o.provider, config.providers)
      requests.inc({ provider, status: statusLabel(o.status) })
      const seconds = finite(o.durationSeconds)
      if (seconds !== undefined) duration.observe({ provider }, seconds)
      const input = finite(o.usage?.inputTokens)
      const output = finite(o.usage?.outputTokens)
      if (input !== undefined && input > 0) tokens.inc({ provider, direction: 'input' }, input)
      if (output !== undefined && output > 0) tokens.inc({ provider, direction: 'output' }, output)
    } catch {
      // a metric must never break the request that produced it
    }
  }

  const recordEvent = (event: SecurityEvent): void => {
    try {
      if (event === null || typeof event !== 'object') return
      securityEvents.inc({ event_type: eventTypeLabel(event.event_type) })
      if (event.event_type === 'auth_failure') authFailures.inc({ provider: providerLabel(event.provider, config.providers) })
      if (config.isRateLimitViolation(event)) rateLimitViolations.inc({ ip: ipLabel(event.ip, ips) })
      if (event.event_type === 'provider_request') {
        const d = (event.details ?? {}) as Record<string, unknown>
        const ms = finite(d.duration_ms)
        observeRequest({
          provider: event.provider,
          status: typeof d.status === 'number' ? d.status : NaN,
          durationSeconds: ms === undefined ? NaN : ms / 1000,
          usage: { inputTokens: finite(d.input_tokens), outputTokens: finite(d.output_tokens) },
        })
      }
    } catch {
      // as above
    }
  }

  return Object.freeze({
    registry,
    names,
    recordEvent,
    observeRequest,
    setPostureFindings,
    render: async () => masker.text(await registry.metrics()),
    contentType: registry.contentType,
  })
}
