import type { NextFunction, Request, Response } from 'express'
import {
  Accounting,
  bucketKeyFor,
  decorate,
  record,
  reservation,
  SCOPE_TEXT,
  seconds,
  settledTokens,
  whenDone,
  type RateLimitHandler,
} from './accounting'
import { proxyChecker } from './keys'
import { own, resolveTokenLimitConfig } from './limit-config'
import { MemoryStore } from './memory-store'
import type { TokenLimitOptions } from './options'
import { PartitionKeys, refuse, setRateLimitHeaders } from './refusal'
import { isStoreUnavailable, type BucketRef } from './store'

/**
 * Tokens per minute as token buckets: admission reserves the request's estimated tokens (prompt
 * bytes / 4 plus its max_tokens, see estimateTokens) and refuses with 429 when the bucket does not
 * hold them; when the response ends the reservation is settled against the usage the provider
 * reported in `res.locals.gatehouse.usage`. Without reported usage the reservation stays charged.
 * Stream chunks are never held: settlement happens after the response has finished.
 */
export function tokenLimit(options: TokenLimitOptions): RateLimitHandler {
  const config = resolveTokenLimitConfig(options, () => new MemoryStore())
  const namespace = `tok:${config.name}`
  const accounting = new Accounting(config.logger, config.onStoreError, config.scope, config.name)
  const partitionKeys = new PartitionKeys()

  const checkProxy =
    config.scope === 'ip' || config.scope === 'key'
      ? proxyChecker((m, meta) => config.logger.warn(m, meta))
      : undefined

  const handler = function tokenLimitMiddleware(req: Request, res: Response, next: NextFunction): void {
    checkProxy?.(req)
    const key = bucketKeyFor(config.scope, req, res, config.ipv6Subnet)
    if (key === undefined) {
      next()
      return
    }
    const provider = config.scope === 'provider' ? key : undefined
    const rule = (provider !== undefined ? own(config.providers, provider) : undefined) ?? config.rule
    if (!rule) {
      next()
      return
    }
    // A request larger than the whole bucket reserves the whole bucket: it can still run (when the
    // bucket is full) and pays the rest when its usage is settled.
    const amount = Math.min(reservation(req, res, config.defaultMaxTokens), rule.capacity)
    if (amount === 0) {
      next()
      return
    }
    const ref: BucketRef = { namespace, key, capacity: rule.capacity, refillPerSecond: rule.refillPerSecond }
    let called = false
    const proceed = (err?: unknown): void => {
      if (called) return
      called = true
      next(err)
    }
    config.store.take(ref, amount).then(
      (state) => {
        const windowSeconds = rule.capacity / rule.refillPerSecond
        if (!state.allowed) {
          accounting.counts.limited++
          const retryAfter = state.msUntilAvailable / 1000
          setRateLimitHeaders(res, config.standardHeaders, {
            limit: rule.capacity,
            remaining: state.tokens,
            resetSeconds: retryAfter,
            windowSeconds,
            name: config.name,
            key,
            partitionKeys,
          })
          refuse(req, res, config.onEvent, config.logger, {
            kind: 'tokens',
            scope: config.scope,
            name: config.name,
            limit: rule.capacity,
            retryAfterSeconds: retryAfter,
            message: `Token rate limit exceeded for ${provider ? `provider ${provider}` : SCOPE_TEXT[config.scope]}: ${Math.round(rule.refillPerSecond * 60)} tokens per minute; this request needs up to ${amount}. Retry after ${seconds(retryAfter)}.`,
            ...(provider ? { limitedProvider: provider } : {}),
          })
          return
        }
        record(res, 'tokens', config.name, {
          kind: 'tokens',
          scope: config.scope,
          limit: rule.capacity,
          remaining: Math.max(0, Math.floor(state.tokens)),
          reserved: amount,
        })
        whenDone(res, () => {
          const actual = settledTokens(res, amount)
          if (actual === amount) return
          config.store.adjust(ref, actual - amount).catch((err: unknown) => accounting.settleFailed(err))
        })
        proceed()
      },
      (err: unknown) => {
        if (isStoreUnavailable(err))
          accounting.admissionFailed(err, req, res, proceed, config.onEvent, 'tokens')
        else proceed(err)
      },
    )
  }
  return decorate(handler, config.store, config.ownsStore, accounting)
}
