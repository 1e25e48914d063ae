import { Counter, Gauge, type Registry } from 'prom-client'

/**
 * Gauges read from another component's state at each scrape. Each registers its metrics once in
 * `registry`, with the instance's `prefix`.
 */

export function trackSharedState(registry: Registry, prefix: string, state: { degraded(): boolean }): void {
  new Gauge({
    name: `${prefix}shared_state_degraded`,
    help: 'Whether this replica cannot confirm its copy of the shared client keys, maintenance and kill switch is current (Redis unreachable)',
    registers: [registry],
    collect() {
      this.set(state.degraded() ? 1 : 0)
    },
  })
}

export function trackKeyExpiry(
  registry: Registry,
  prefix: string,
  keys: { list(): ReadonlyArray<{ expires_at?: string; revoked_at?: string }> },
): void {
  const windows = [['1d', 86_400_000], ['7d', 7 * 86_400_000]] as const
  new Gauge({
    name: `${prefix}client_keys_expiring`,
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

export function trackRateLimitStore(registry: Registry, prefix: string, store: { degraded(): boolean; fallbackCount(): number }): void {
  new Gauge({
    name: `${prefix}rate_limit_store_degraded`,
    help: 'Whether limits are enforced locally (limit / replicas) because the shared rate-limit store is unreachable',
    registers: [registry],
    collect() {
      this.set(store.degraded() ? 1 : 0)
    },
  })
  let counted = 0
  const fallbacks = new Counter({
    name: `${prefix}rate_limit_store_fallbacks_total`,
    help: 'Rate-limit store operations served locally because the shared store was unreachable',
    registers: [registry],
    collect() {
      const now = store.fallbackCount()
      if (now > counted) fallbacks.inc(now - counted)
      counted = now
    },
  })
}
