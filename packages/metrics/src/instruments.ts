import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { MetricsConfig } from './options'
import { PendingCounts } from './pending'

/** The names of the Gatehouse metrics, prefix included (process metrics not listed). */
export interface MetricNames {
  readonly authFailures: string
  readonly rateLimitViolations: string
  readonly securityEvents: string
  readonly requests: string
  readonly requestDuration: string
  readonly upstreamTokens: string
  readonly postureFindings: string
  readonly credentialRejections: string
  readonly unauditedChanges: string
  readonly outboundSecrets: string
}

export function metricNames(p: string): MetricNames {
  return Object.freeze({
    authFailures: `${p}auth_failures_total`,
    rateLimitViolations: `${p}rate_limit_violations_total`,
    securityEvents: `${p}security_events_total`,
    requests: `${p}requests_total`,
    requestDuration: `${p}request_duration_seconds`,
    upstreamTokens: `${p}upstream_tokens_total`,
    postureFindings: `${p}security_posture_findings`,
    credentialRejections: `${p}upstream_credential_rejections_total`,
    unauditedChanges: `${p}unaudited_changes_total`,
    outboundSecrets: `${p}outbound_secrets_total`,
  })
}

/** The metrics events and requests are counted in. The busiest counters are fed through PendingCounts. */
export interface Instruments {
  readonly authFailures: Counter<'provider'>
  readonly rateLimitViolations: Counter<'ip'>
  readonly securityEvents: PendingCounts<'event_type'>
  readonly requests: PendingCounts<'provider' | 'status'>
  readonly duration: Histogram<'provider'>
  readonly tokens: PendingCounts<'provider' | 'direction'>
  readonly credentialRejections: Counter<'provider' | 'action'>
  readonly unauditedChanges: Counter<'action'>
  readonly outboundSecrets: Counter<'provider' | 'rule' | 'action'>
  readonly posture: Gauge<'severity'>
}

/** A counter fed by a PendingCounts, flushed into it at each collection. */
function pendingCounter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[]): PendingCounts<L> {
  const pending = new PendingCounts<L>()
  const counter: Counter<L> = new Counter({ name, help, labelNames, registers: [registry], collect: () => pending.flushInto(counter) })
  return pending
}

/** Register the event and request metrics of one instance in `registry`. */
export function createInstruments(registry: Registry, names: MetricNames, config: MetricsConfig): Instruments {
  const registers = [registry]
  return {
    authFailures: new Counter({ name: names.authFailures, help: 'Total authentication failures', labelNames: ['provider'] as const, registers }),
    rateLimitViolations: new Counter({ name: names.rateLimitViolations, help: 'Total rate limit violations', labelNames: ['ip'] as const, registers }),
    securityEvents: pendingCounter(registry, names.securityEvents, 'Total security events', ['event_type'] as const),
    requests: pendingCounter(registry, names.requests, 'Total requests answered, by provider and status code', ['provider', 'status'] as const),
    duration: new Histogram({
      name: names.requestDuration,
      help: 'Time to answer a request, in seconds',
      labelNames: ['provider'] as const,
      buckets: [...config.durationBuckets],
      registers,
    }),
    tokens: pendingCounter(registry, names.upstreamTokens, 'Tokens the upstream reported using, by direction (input, output)', [
      'provider',
      'direction',
    ] as const),
    credentialRejections: new Counter({
      name: names.credentialRejections,
      help: 'Upstream credentials the provider proved bad, by provider and what the vault did (cooldown, refresh, kept_last_credential: the last usable one stays in service)',
      labelNames: ['provider', 'action'] as const,
      registers,
    }),
    unauditedChanges: new Counter({
      name: names.unauditedChanges,
      help: 'Defensive management changes made while the audit log could not be written (config_change unaudited_change), by action',
      labelNames: ['action'] as const,
      registers,
    }),
    outboundSecrets: new Counter({
      name: names.outboundSecrets,
      help: 'Credentials found in request bodies on their way to a provider (request-guard secret detection), by provider, rule and what was done (block, mask, log)',
      labelNames: ['provider', 'rule', 'action'] as const,
      registers,
    }),
    posture: new Gauge({
      name: names.postureFindings,
      help: 'Risky settings found by the security-posture checks (gatehouse doctor), by severity',
      labelNames: ['severity'] as const,
      registers,
    }),
  }
}
