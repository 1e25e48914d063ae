import type { Express } from 'express'
import { isLoopback, normalizeIp } from '@gatehouse/core'
import { dashboardRouter } from '@gatehouse/dashboard'
import { diagnose } from '../doctor'
import { providersWithoutCredential } from '../layers/credential-check'
import type { GatewayServices } from '../gateway/services'
import { managementRouter, refusePreflight } from './router'
import { mountCredentialRoutes, mountDenylistRoutes } from './routes'

/** The management API and the dashboard under `/v0/management`: their own key, loopback only by default; off without a key. */
export function mountManagement(app: Express, s: GatewayServices): void {
  const { config, logger } = s
  const mk = config.management.secret_key
  if (!config.management.enabled || !mk) return
  app.use('/v0/management', refusePreflight(s.events.emit))
  // The dashboard logs in with the management key and keeps a session cookie; it is mounted before
  // the API router, whose Bearer check it does not use.
  if (mk.length >= 32) mountDashboard(app, s, mk)
  else logger.warn('the dashboard is off: it needs a management key of at least 32 characters')
  const audit = s.events.audit
  app.use(
    '/v0/management',
    managementRouter({
      secretKey: mk,
      allowRemote: config.management.allow_remote,
      runtime: s.state.runtime,
      control: s.state.control,
      keyStore: s.state.keyStore,
      emit: s.events.emit,
      logger,
      canAudit: () => audit?.healthy ?? true,
      auditWritten: async () => {
        if (!audit) return true
        let timer: NodeJS.Timeout | undefined
        const flushed = await Promise.race([
          audit.flush().then(() => true),
          new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 2000))),
        ]).finally(() => clearTimeout(timer))
        return flushed && audit.healthy
      },
      extend: (router, ctx) => {
        mountDenylistRoutes(router, ctx, s.ipFilter)
        mountCredentialRoutes(router, ctx, s.upstream.vault)
        s.options.managementExtensions?.(router, ctx)
      },
    }),
  )
}

function mountDashboard(app: Express, s: GatewayServices, secretKey: string): void {
  const { config, events, ipFilter, limits, upstream } = s
  app.use(
    '/v0/management/dashboard',
    function dashboardGuardMiddleware(req, res, next) {
      if (config.management.allow_remote || isLoopback(normalizeIp(req.ip))) return next()
      res.status(403).type('text/plain').send('The dashboard accepts loopback callers only')
    },
    dashboardRouter({
      secretKey,
      secureCookies: config.server.tls.enabled,
      knownSecrets: s.knownSecrets,
      logger: s.logger,
      onEvent: events.emit,
      data: {
        recentEvents: (limit) => events.recent.recentEvents(limit),
        topRefused: () => events.recent.topRefused(),
        denylist: () => ipFilter.list(),
        limits: async () => {
          const out: { name: string; limit: number | string; used?: number; remaining?: number; resetsAt?: Date }[] = []
          for (const p of s.providers) {
            const pc = config.providers[p]!
            if (pc.rate_limit?.requests_per_minute) out.push({ name: `${p} requests per minute`, limit: pc.rate_limit.requests_per_minute })
            if (pc.rate_limit?.tokens_per_minute) out.push({ name: `${p} tokens per minute`, limit: pc.rate_limit.tokens_per_minute })
            if (pc.quota && limits.quota) {
              const u = await limits.quota.usage(p)
              out.push({ name: `${p} monthly token quota`, limit: pc.quota.limit, ...(u ? { used: u.used, remaining: u.remaining, resetsAt: u.resetsAt } : {}) })
            }
          }
          const perIp = config.server.security.rate_limiting
          if (perIp.enabled) out.push({ name: 'requests per second per IP', limit: `${perIp.requests_per_second} (burst ${perIp.burst})` })
          return out
        },
        doctor: () => diagnose(config, s.cwd, providersWithoutCredential(config, upstream.vault, s.providers)),
      },
    }),
  )
}
