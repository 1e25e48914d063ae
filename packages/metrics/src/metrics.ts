import { Registry, collectDefaultMetrics } from 'prom-client'
import { createMasker, type SecurityEventHandler } from '@gatehouse/core'
import { createInstruments, metricNames, type MetricNames } from './instruments'
import { resolveMetricsConfig, type MetricsOptions } from './options'
import { eventRecorder, finite, requestObserver, type RequestObservation } from './recording'
import { trackKeyExpiry, trackRateLimitStore, trackSharedState } from './trackers'

/** The metrics of one Gatehouse instance, in their own prom-client Registry. */
export interface GatehouseMetrics {
  /** The registry (never prom-client's global one). */
  readonly registry: Registry
  /** The names of the Gatehouse metrics, prefix included (process metrics not listed). */
  readonly names: MetricNames
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
  const names = metricNames(config.prefix)
  const instruments = createInstruments(registry, names, config)
  if (config.processMetrics) collectDefaultMetrics({ register: registry })
  const masker = createMasker({ knownSecrets: config.knownSecrets })
  const observeRequest = requestObserver(config, instruments)
  const p = config.prefix

  return Object.freeze({
    registry,
    names,
    recordEvent: eventRecorder(config, instruments, observeRequest),
    observeRequest,
    setPostureFindings: (counts: Partial<Record<'high' | 'medium' | 'low', number>>): void => {
      for (const severity of ['high', 'medium', 'low'] as const) instruments.posture.set({ severity }, finite(counts[severity]) ?? 0)
    },
    trackRateLimitStore: (store: { degraded(): boolean; fallbackCount(): number }) => trackRateLimitStore(registry, p, store),
    trackSharedState: (state: { degraded(): boolean }) => trackSharedState(registry, p, state),
    trackKeyExpiry: (keys: { list(): ReadonlyArray<{ expires_at?: string; revoked_at?: string }> }) => trackKeyExpiry(registry, p, keys),
    render: async () => masker.text(await registry.metrics()),
    contentType: registry.contentType,
  })
}
