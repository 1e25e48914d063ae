import type { RequestHandler } from 'express'
import type { Logger, ProviderName, SecurityEventHandler } from '@gatehouse/core'
import {
  keyLimits,
  LocalFallbackStore,
  memoryStore,
  quota,
  rateLimit,
  redisStore,
  tokenLimit,
  type QuotaHandler,
  type RateLimitStore,
} from '@gatehouse/rate-limit'
import type { GatehouseMetrics } from '@gatehouse/metrics'
import type { GatehouseConfig } from '../config/types'
import type { SharedState } from './state'
import type { AuthPaths } from '../auth-paths'

export type Limiter = RequestHandler & { shutdown?: () => Promise<void> | void }

export interface Limits {
  store: RateLimitStore
  /** Under `store.on_error: local`, the store that falls back to this process's share of each limit. */
  fallback: LocalFallbackStore | undefined
  /** Global and per-address limits (before client auth). */
  perAddress: Limiter[]
  /** Per-provider requests, tokens and monthly quotas, then each key's own limits (after request-guard). */
  perRequest: Limiter[]
  /** The monthly quota limiter, read by the dashboard. */
  quota: QuotaHandler | undefined
}

export interface LimitsContext {
  config: GatehouseConfig
  state: SharedState
  paths: AuthPaths
  /** HMAC key of the quota file (memory store). */
  quotaKey: Buffer
  providers: readonly ProviderName[]
  metrics: GatehouseMetrics | undefined
  emit: SecurityEventHandler
  logger: Logger
}

/** The rate-limit store (memory, Redis, or Redis with a local fallback) and every limiter the config asks for. */
export function createLimits({ config, state, paths, quotaKey, providers, metrics, emit, logger }: LimitsContext): Limits {
  const onStoreError = config.store.on_error
  const shared = state.redis ? redisStore({ client: state.redis, prefix: `${state.prefix}rl:`, logger }) : undefined
  const fallback = shared && onStoreError === 'local' ? new LocalFallbackStore({ store: shared, replicas: config.store.replicas, logger }) : undefined
  if (fallback && metrics) metrics.trackRateLimitStore(fallback)
  const store: RateLimitStore = fallback ?? shared ?? memoryStore({ quotaFile: paths.quotaFile, quotaFileKey: quotaKey, onEvent: emit, logger })
  // The limiters see allow or deny only: under `local` the store itself falls back to this
  // process's share of each limit, so a limiter never meets an unreachable store.
  // Every limiter writes the IETF draft-8 fields, as the key limits do: one `RateLimit` and one
  // `RateLimit-Policy` list naming each limit ("ip", "key-rpm"…), never draft-6 fields mixed in.
  const common = { store, onStoreError: onStoreError === 'deny' ? 'deny' : 'allow', onEvent: emit, logger, standardHeaders: 'draft-8' } as const

  const perAddress: Limiter[] = []
  if (config.server.rate_limit.enabled) {
    const g = config.server.rate_limit
    perAddress.push(rateLimit({ ...common, name: 'global', scope: 'global', requestsPerSecond: g.requests_per_second, burst: g.burst }))
  }
  const perIp = config.server.security.rate_limiting
  if (perIp.enabled) {
    perAddress.push(rateLimit({ ...common, name: perIp.per_ip ? 'ip' : 'global-security', scope: perIp.per_ip ? 'ip' : 'global', requestsPerSecond: perIp.requests_per_second, burst: perIp.burst }))
  }

  // Each reserves request-guard's estimate and settles on what the request really cost.
  const byProvider = <T>(pick: (p: NonNullable<GatehouseConfig['providers'][ProviderName]>) => T | undefined): Record<string, T> =>
    Object.fromEntries(providers.flatMap((p) => {
      const v = pick(config.providers[p]!)
      return v === undefined ? [] : [[p, v]]
    }))
  const rpm = byProvider((pc) => (pc.rate_limit?.requests_per_minute ? { requestsPerMinute: pc.rate_limit.requests_per_minute } : undefined))
  const tpm = byProvider((pc) => (pc.rate_limit?.tokens_per_minute ? { tokensPerMinute: pc.rate_limit.tokens_per_minute } : undefined))
  const quotas = byProvider((pc) => (pc.quota ? { limit: pc.quota.limit, reset: 'monthly' as const } : undefined))
  const defaultMaxTokens = Math.max(...providers.map((p) => config.providers[p]?.max_tokens ?? 4096), 1)
  const perRequest: Limiter[] = []
  if (Object.keys(rpm).length) perRequest.push(rateLimit({ ...common, name: 'provider-rpm', scope: 'provider', providers: rpm }))
  if (Object.keys(tpm).length) perRequest.push(tokenLimit({ ...common, name: 'provider-tpm', scope: 'provider', providers: tpm, defaultMaxTokens }))
  const quotaLimiter = Object.keys(quotas).length ? quota({ ...common, name: 'provider-quota', scope: 'provider', providers: quotas, defaultMaxTokens }) : undefined
  if (quotaLimiter) perRequest.push(quotaLimiter)
  perRequest.push(keyLimits({ ...common, name: 'key', defaults: config.auth.key_limits, defaultMaxTokens }))
  return { store, fallback, perAddress, perRequest, quota: quotaLimiter }
}
