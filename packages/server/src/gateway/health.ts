import type { Express } from 'express'
import { providersWithoutCredential } from '../layers/credential-check'
import type { GatewayServices } from './services'

/** `/healthz` (the process answers) and `/readyz` (every dependency works): no auth, no data. */
export function mountHealth(app: Express, s: GatewayServices): void {
  const { state, events, upstream, limits, ipFilter } = s
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' })
  })
  app.get('/readyz', (_req, res) => {
    // Under store.on_error local a gateway whose Redis is down still enforces limits: it stays ready
    // (a balancer pulling every replica would take the whole service down); the metric says degraded.
    void Promise.resolve(limits.fallback ? true : limits.store.ping()).then((storeOk) => {
      const ready =
        !state.runtime.shuttingDown &&
        state.keyStore.lastError === undefined &&
        upstream.vault.status().readable &&
        (events.audit?.healthy ?? true) &&
        (events.storage?.healthy ?? true) &&
        ipFilter.isStoreHealthy() &&
        storeOk
      const missing = providersWithoutCredential(s.config, upstream.vault, s.providers)
      if (!ready || missing.length) {
        res.status(503).json({ status: 'not ready', ...(missing.length ? { providers_without_credential: missing } : {}) })
      } else res.json({ status: 'ready' })
    })
  })
}
