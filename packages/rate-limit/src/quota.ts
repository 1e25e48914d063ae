import type { NextFunction, Request, Response } from 'express'
import { gatehouseLocals } from '@gatehouse/core'
import {
  Accounting,
  decorate,
  record,
  reservation,
  settledTokens,
  whenDone,
  type RateLimitHandler,
} from './accounting'
import { requestProvider } from './keys'
import { own, resolveQuotaConfig } from './limit-config'
import { MemoryStore } from './memory-store'
import type { QuotaOptions } from './options'
import { periodEnd, periodStart } from './period'
import { PartitionKeys, refuse, setRateLimitHeaders } from './refusal'
import { isStoreUnavailable, type QuotaRef } from './store'

/** Usage of one quota counter. */
export interface QuotaUsage {
  limit: number
  used: number
  /** Never negative. */
  remaining: number
  /** When the counter starts again. */
  resetsAt: Date
}

export type QuotaHandler = RateLimitHandler & {
  /** The counter of a provider (scope provider), key id (scope key) or `global` (scope global). */
  usage(id: string): Promise<QuotaUsage | undefined>
}

/**
 * Monthly token quotas (calendar month, UTC) per provider, per client key or for the whole
 * gateway. Admission reserves the request's estimated tokens and refuses with 429 unless the whole
 * reservation fits in what is left, so the counter never passes the limit at admission; the
 * reservation is settled against reported usage when the response ends (kept when none was
 * reported). Counters survive restarts: in Redis, or in memoryStore's `quotaFile`.
 */
export function quota(options: QuotaOptions): QuotaHandler {
  const config = resolveQuotaConfig(options, () => new MemoryStore())
  const namespace = `quota:${config.name}`
  const accounting = new Accounting(config.logger, config.onStoreError, config.scope, config.name)
  const partitionKeys = new PartitionKeys()

  const limitFor = (id: string): number | undefined =>
    config.scope === 'provider'
      ? (own(config.providers, id) ?? config.limit)
      : config.scope === 'key'
        ? (own(config.keys, id) ?? config.limit)
        : config.limit

  const target = (req: Request, res: Response): string | undefined => {
    switch (config.scope) {
      case 'global':
        return 'global'
      case 'provider':
        return requestProvider(req, res)
      case 'key': {
        // Only authenticated keys are counted: a counter per address would be unbounded.
        const id = gatehouseLocals(res).clientKeyId
        return typeof id === 'string' && id !== '' ? id : undefined
      }
    }
  }

  const handler = function quotaMiddleware(req: Request, res: Response, next: NextFunction): void {
    const id = target(req, res)
    const limit = id === undefined ? undefined : limitFor(id)
    if (id === undefined || limit === undefined) {
      next()
      return
    }
    const amount = reservation(req, res, config.defaultMaxTokens)
    const ref: QuotaRef = { namespace, key: id, limit }
    let called = false
    const proceed = (err?: unknown): void => {
      if (called) return
      called = true
      next(err)
    }
    config.store.quotaReserve(ref, amount).then(
      (state) => {
        const remaining = Math.max(0, limit - state.used)
        if (!state.allowed) {
          accounting.counts.limited++
          const end = periodEnd(state.period)
          const retryAfter = state.msUntilReset / 1000
          setRateLimitHeaders(res, config.standardHeaders, {
            limit,
            remaining,
            resetSeconds: retryAfter,
            windowSeconds: (end - periodStart(state.period)) / 1000,
            name: config.name,
            key: id,
            partitionKeys,
          })
          const whose =
            config.scope === 'provider'
              ? `provider ${id}`
              : config.scope === 'key'
                ? 'this API key'
                : 'the gateway'
          refuse(req, res, config.onEvent, config.logger, {
            kind: 'quota',
            scope: config.scope,
            name: config.name,
            limit,
            retryAfterSeconds: retryAfter,
            message: `Monthly token quota exhausted for ${whose}: ${remaining} of ${limit} tokens left, this request needs up to ${amount}. The quota resets at ${new Date(end).toISOString()}.`,
            ...(config.scope === 'provider' ? { limitedProvider: id } : {}),
          })
          return
        }
        record(res, 'quota', config.name, {
          kind: 'quota',
          scope: config.scope,
          limit,
          remaining,
          reserved: amount,
        })
        whenDone(res, () => {
          const actual = settledTokens(res, amount)
          if (actual === amount) return
          config.store
            .quotaSettle(ref, state.period, actual - amount)
            .catch((err: unknown) => accounting.settleFailed(err))
        })
        proceed()
      },
      (err: unknown) => {
        if (isStoreUnavailable(err))
          accounting.admissionFailed(err, req, res, proceed, config.onEvent, 'quota')
        else proceed(err)
      },
    )
  }

  const usage = async (id: string): Promise<QuotaUsage | undefined> => {
    const limit = limitFor(id)
    if (limit === undefined) return undefined
    const state = await config.store.quotaGet({ namespace, key: id, limit })
    return {
      limit,
      used: state.used,
      remaining: Math.max(0, limit - state.used),
      resetsAt: new Date(periodEnd(state.period)),
    }
  }
  return Object.assign(decorate(handler, config.store, config.ownsStore, accounting), { usage })
}
