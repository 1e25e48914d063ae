import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { createMasker, isSharedLimitRefusal, type SecurityEvent, type SecurityEventHandler } from '@gatehouse/core'
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
    readonly credentialRejections: string
    readonly unauditedChanges: string
  }
  /** Count a security event; `provider_request` events also feed the request metrics. Never throws. */
  readonly recordEvent: SecurityEventHandler
  /** Count one finished request (when not fed through `provider_request` events). Never throws. */
  readonly observeRequest: (observation: RequestObservation) => void
  /** Set the security-posture findings (`gatehouse doctor`) by severity. Never throws. */
  readonly setPostureFindings: (counts: Partial<Record<'high' | 'medium' | 'low', number>>) => void
  /**
   * Report a rate-limit store's health (`LocalFallbackStore`): `<prefix>rate_limit_store_degraded`
   * is 1 while limits are enforced locally because the shared store (Redis) failed, and
   * `<prefix>rate_limit_store_fallbacks_total` counts the operations served locally. Alert on the
   * first (`docs`: GatehouseRateLimitDegraded). Call once.
   */
  readonly trackRateLimitStore: (store: { degraded(): boolean; fallbackCount(): number }) => void
  /**
   * Cluster mode: `<prefix>shared_state_degraded` is 1 while this replica cannot confirm that its
   * copy of the shared state (client keys, maintenance, kill switch) is current.
   */
  readonly trackSharedState: (state: { degraded(): boolean }) => void
  /**
   * `<prefix>client_keys_expiring{within}`: active client keys whose expiry (or the end of their
   * rotation grace) falls within a day and within a week, counted at each scrape.
   */
  readonly trackKeyExpiry: (keys: { list(): ReadonlyArray<{ expires_at?: string; revoked_at?: string }> }) => void
  /** The Prometheus exposition text, passed through the masker. */
  render(): Promise<string>
  readonly contentType: string
}

/**
 * Counter increments kept as plain numbers and added to their prom-client counter when it is
 * collected (a scrape, or `get()`): a request pays one Map lookup instead of prom-client's label
 * validation and hashing per counter. Label values here are bounded, so is the map.
 */
class PendingCounts<L extends string> {
  private readonly byKey = new Map<string, { labels: Partial<Record<L, string>>; n: number }>()

  add(key: string, labels: () => Partial<Record<L, string>>, n = 1): void {
    const entry = this.byKey.get(key)
    if (entry) entry.n += n
    else this.byKey.set(key, { labels: labels(), n })
  }

  flushInto(counter: Counter<L>): void {
    for (const entry of this.byKey.values()) {
      if (entry.n === 0) continue
      counter.inc(entry.labels, entry.n)
      entry.n = 0
    }
  }
}

/** The actions the reference server lets through while the audit log is down (a bounded label). */
const UNAUDITED_ACTIONS: ReadonlySet<string> = new Set(['denylist_add', 'key_revoke', 'credential_revoke', 'maintenance_on', 'provider_off'])

const finite = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined)

/**
 * Create the security metrics: `<prefix>auth_failures_total{provider}`,
 * `<prefix>rate_limit_violations_total{ip}`, `<prefix>security_events_total{event_type}`,
 * `<prefix>requests_total{provider,status}`, `<prefix>request_duration_seconds{provider}`,
 * `<prefix>upstream_tokens_total{provider,direction}`,
 * `<prefix>upstream_credential_rejections_total{provider,action}`, `<prefix>unaudited_changes_total{action}`,
 * and prom-client's process metrics. Every
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
    credentialRejections: `${p}upstream_credential_rejections_total`,
    unauditedChanges: `${p}unaudited_changes_total`,
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
  const pendingEvents = new PendingCounts<'event_type'>()
  const securityEvents: Counter<'event_type'> = new Counter({
    name: names.securityEvents,
    help: 'Total security events',
    labelNames: ['event_type'] as const,
    registers: [registry],
    collect: () => pendingEvents.flushInto(securityEvents),
  })
  const pendingRequests = new PendingCounts<'provider' | 'status'>()
  const requests: Counter<'provider' | 'status'> = new Counter({
    name: names.requests,
    help: 'Total requests answered, by provider and status code',
    labelNames: ['provider', 'status'] as const,
    registers: [registry],
    collect: () => pendingRequests.flushInto(requests),
  })
  const duration = new Histogram({
    name: names.requestDuration,
    help: 'Time to answer a request, in seconds',
    labelNames: ['provider'] as const,
    buckets: [...config.durationBuckets],
    registers: [registry],
  })
  const pendingTokens = new PendingCounts<'provider' | 'direction'>()
  const tokens: Counter<'provider' | 'direction'> = new Counter({
    name: names.upstreamTokens,
    help: 'Tokens the upstream reported using, by direction (input, output)',
    labelNames: ['provider', 'direction'] as const,
    registers: [registry],
    collect: () => pendingTokens.flushInto(tokens),
  })
  const credentialRejections = new Counter({
    name: names.credentialRejections,
    help: 'Upstream credentials the provider proved bad, by provider and what the vault did (cooldown, refresh, kept_last_credential: the last usable one stays in service)',
    labelNames: ['provider', 'action'] as const,
    registers: [registry],
  })
  const unauditedChanges = new Counter({
    name: names.unauditedChanges,
    help: 'Defensive management changes made while the audit log could not be written (config_change unaudited_change), by action',
    labelNames: ['action'] as const,
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
  const trackSharedState = (state: { degraded(): boolean }): void => {
    new Gauge({
      name: `${config.prefix}shared_state_degraded`,
      help: 'Whether this replica cannot confirm its copy of the shared client keys, maintenance and kill switch is current (Redis unreachable)',
      registers: [registry],
      collect() {
        this.set(state.degraded() ? 1 : 0)
      },
    })
  }
  const trackKeyExpiry = (keys: { list(): ReadonlyArray<{ expires_at?: string; revoked_at?: string }> }): void => {
    const windows = [['1d', 86_400_000], ['7d', 7 * 86_400_000]] as const
    new Gauge({
      name: `${config.prefix}client_keys_expiring`,
      help: 'Active client keys that expire (or whose rotation grace ends) within the window',
      labelNames: ['within'] as const,
      registers: [registry],
      collect() {
        const now = Date.now()
        const ends = keys
          .list()
          .filter((k) => !k.revoked_at && k.expires_at !== undefined)
          .map((k) => Date.parse(k.expires_at!))
          .filter((t) => t > now)
        for (const [within, ms] of windows) this.set({ within }, ends.filter((t) => t - now <= ms).length)
      },
    })
  }
  const trackRateLimitStore = (store: { degraded(): boolean; fallbackCount(): number }): void => {
    new Gauge({
      name: `${config.prefix}rate_limit_store_degraded`,
      help: 'Whether limits are enforced locally (limit / replicas) because the shared rate-limit store is unreachable',
      registers: [registry],
      collect() {
        this.set(store.degraded() ? 1 : 0)
      },
    })
    let counted = 0
    const fallbacks = new Counter({
      name: `${config.prefix}rate_limit_store_fallbacks_total`,
      help: 'Rate-limit store operations served locally because the shared store was unreachable',
      registers: [registry],
      collect() {
        const now = store.fallbackCount()
        if (now > counted) fallbacks.inc(now - counted)
        counted = now
      },
    })
  }

  const ips = new BoundedLabel(config.maxLabelValues)
  const masker = createMasker({ knownSecrets: config.knownSecrets })

  const observeRequest = (o: RequestObservation): void => {
    try {
      const provider = providerLabel(o.provider, config.providers)
      const status = statusLabel(o.status)
      pendingRequests.add(`${provider} ${status}`, () => ({ provider, status }))
      const seconds = finite(o.durationSeconds)
      if (seconds !== undefined) duration.observe({ provider }, seconds)
      const input = finite(o.usage?.inputTokens)
      const output = finite(o.usage?.outputTokens)
      if (input !== undefined && input > 0) pendingTokens.add(`${provider} input`, () => ({ provider, direction: 'input' }), input)
      if (output !== undefined && output > 0) pendingTokens.add(`${provider} output`, () => ({ provider, direction: 'output' }), output)
    } catch {
      // a metric must never break the request that produced it
    }
  }

  const recordEvent = (event: SecurityEvent): void => {
    try {
      if (event === null || typeof event !== 'object') return
      const eventType = eventTypeLabel(event.event_type)
      pendingEvents.add(eventType, () => ({ event_type: eventType }))
      if (event.event_type === 'auth_failure') authFailures.inc({ provider: providerLabel(event.provider, config.providers) })
      // A refusal by a bucket the caller shares (own_limit: false) is not the caller's doing: it is
      // counted under ip="shared", so a per-address rule never sees the victims of a drained bucket.
      if (config.isRateLimitViolation(event)) rateLimitViolations.inc({ ip: isSharedLimitRefusal(event) ? 'shared' : ipLabel(event.ip, ips) })
      if (event.event_type === 'credential_access' && event.result === 'rejected') {
        const action = (event.details as Record<string, unknown> | undefined)?.action
        credentialRejections.inc({
          provider: providerLabel(event.provider, config.providers),
          action: action === 'cooldown' || action === 'refresh' || action === 'kept_last_credential' ? action : 'other',
        })
      }
      if (event.event_type === 'config_change' && event.result === 'unaudited_change') {
        const action = (event.details as Record<string, unknown> | undefined)?.action
        unauditedChanges.inc({ action: typeof action === 'string' && UNAUDITED_ACTIONS.has(action) ? action : 'other' })
      }
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
    trackRateLimitStore,
    trackSharedState,
    trackKeyExpiry,
    render: async () => masker.text(await registry.metrics()),
    contentType: registry.contentType,
  })
}
