import type { NextFunction, Request, Response } from 'express'
import {
  rateLimit as expressRateLimit,
  type RateLimitInfo,
  type RateLimitRequestHandler,
} from 'express-rate-limit'
import type { Logger } from '@gatehouse/core'
import { Accounting, bucketKeyFor, decorate, record, SCOPE_TEXT, seconds, type RateLimitHandler } from './accounting'
import { TokenBucketStore } from './bucket-store'
import { proxyChecker, requestProvider } from './keys'
import { resolveRateLimitConfig, type BucketRule } from './limit-config'
import { MemoryStore } from './memory-store'
import type { RateLimitOptions } from './options'
import { PartitionKeys, refuse, setRateLimitHeaders } from './refusal'
import { isStoreUnavailable } from './store'

/** One express-rate-limit instance and the bucket it enforces (its headers need the window). */
interface Limiter {
  limiter: RateLimitRequestHandler
  rule: BucketRule
}

function erlLogger(logger: Logger): {
  error: (e: unknown, m?: string) => void
  warn: (e: unknown, m?: string) => void
} {
  const meta = (e: unknown): Record<string, unknown> => ({
    error: e instanceof Error ? e.message : String(e),
    ...(typeof (e as { code?: unknown } | null)?.code === 'string'
      ? { code: (e as { code: string }).code }
      : {}),
  })
  return {
    error: (e, m) => logger.error(m ?? 'express-rate-limit error', meta(e)),
    warn: (e, m) => logger.warn(m ?? 'express-rate-limit warning', meta(e)),
  }
}

/**
 * Request limits as token buckets on express-rate-limit: one bucket per scope key (the whole
 * gateway, each client address, each client key or each provider) holding `burst` requests and
 * refilling at the configured rate. A refused request gets 429 in the provider's error shape with
 * `Retry-After` and `RateLimit-*` headers, and a `security_violation` event.
 */
export function rateLimit(options: RateLimitOptions): RateLimitHandler {
  const config = resolveRateLimitConfig(options, () => new MemoryStore())
  const namespace = `req:${config.name}`
  const accounting = new Accounting(config.logger, config.onStoreError, config.scope, config.name)
  const partitionKeys = new PartitionKeys()

  /**
   * The `RateLimit-*` fields of a decision, in the configured draft. Written here rather than by
   * express-rate-limit (whose `standardHeaders` is off): the same text it writes for each draft,
   * from the one writer the token, quota and key limits use too, which keeps the draft-8 partition
   * key of a bucket hashed once rather than once per request.
   */
  const writeHeaders = (res: Response, rule: BucketRule, info: RateLimitInfo): void =>
    setRateLimitHeaders(res, config.standardHeaders, {
      limit: info.limit,
      remaining: info.remaining,
      resetSeconds: info.resetTime ? (info.resetTime.getTime() - Date.now()) / 1000 : rule.capacity / rule.refillPerSecond,
      windowSeconds: rule.capacity / rule.refillPerSecond,
      name: config.name,
      key: info.key,
      partitionKeys,
    })

  const build = (rule: BucketRule): RateLimitRequestHandler =>
    expressRateLimit({
      windowMs: (rule.capacity / rule.refillPerSecond) * 1000,
      limit: rule.capacity,
      standardHeaders: false,
      legacyHeaders: config.legacyHeaders,
      identifier: config.name,
      store: new TokenBucketStore({
        store: config.store,
        namespace,
        capacity: rule.capacity,
        refillPerSecond: rule.refillPerSecond,
      }),
      keyGenerator: (req, res) => bucketKeyFor(config.scope, req, res, config.ipv6Subnet) ?? 'unknown',
      passOnStoreError: false,
      logger: erlLogger(config.logger),
      handler: (req, res) => {
        accounting.counts.limited++
        const info = (req as Request & { rateLimit?: RateLimitInfo }).rateLimit
        if (info) writeHeaders(res, rule, info)
        const retryAfter = info?.resetTime ? (info.resetTime.getTime() - Date.now()) / 1000 : 1
        const per =
          rule.refillPerSecond >= 1
            ? `${+rule.refillPerSecond.toFixed(3)} per second`
            : `${+(rule.refillPerSecond * 60).toFixed(3)} per minute`
        const provider = config.scope === 'provider' ? requestProvider(req, res) : undefined
        refuse(req, res, config.onEvent, config.logger, {
          kind: 'requests',
          scope: config.scope,
          name: config.name,
          limit: rule.capacity,
          retryAfterSeconds: retryAfter,
          message: `Rate limit exceeded for ${provider ? `provider ${provider}` : SCOPE_TEXT[config.scope]}: ${per}, burst ${rule.capacity}. Retry after ${seconds(retryAfter)}.`,
          ...(provider ? { limitedProvider: provider } : {}),
        })
      },
    })

  // Every limiter is built here, at construction (express-rate-limit warns about limiters made
  // inside a request). Providers without a rate of their own share one limiter, whose buckets are
  // still one per provider because the key is the provider's name.
  const limiterOf = (rule: BucketRule): Limiter => ({ limiter: build(rule), rule })
  const single = config.rule ? limiterOf(config.rule) : undefined
  const perProvider = new Map(Object.entries(config.providers).map(([name, rule]) => [name, limiterOf(rule)]))

  const pick = (req: Request, res: Response): Limiter | undefined => {
    if (config.scope !== 'provider') return single
    const provider = requestProvider(req, res)
    if (provider === undefined) return undefined
    return perProvider.get(provider) ?? single
  }

  const checkProxy =
    config.scope === 'ip' || config.scope === 'key'
      ? proxyChecker((m, meta) => config.logger.warn(m, meta))
      : undefined

  const handler = function rateLimitMiddleware(req: Request, res: Response, next: NextFunction): void {
    checkProxy?.(req)
    const picked = pick(req, res)
    if (!picked) {
      next()
      return
    }
    void picked.limiter(req, res, (err?: unknown) => {
      if (err === undefined || err === null) {
        const info = (req as Request & { rateLimit?: RateLimitInfo }).rateLimit
        if (info) {
          writeHeaders(res, picked.rule, info)
          record(res, 'requests', config.name, {
            kind: 'requests',
            scope: config.scope,
            limit: info.limit,
            remaining: info.remaining,
          })
        }
        next()
        return
      }
      if (isStoreUnavailable(err)) {
        accounting.admissionFailed(err, req, res, next, config.onEvent, 'requests')
        return
      }
      next(err)
    })
  }
  return decorate(handler, config.store, config.ownsStore, accounting)
}
