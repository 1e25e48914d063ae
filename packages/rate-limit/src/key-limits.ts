import type { NextFunction, Request, RequestHandler, Response } from 'express'
import {
  GatehouseConfigError,
  gatehouseLocals,
  isLogger,
  KEY_LIMIT_NAMES,
  noopLogger,
  type KeyLimits,
  type Logger,
  type SecurityEventHandler,
  tokenCharge as tokenChargeCore,
} from '@gatehouse/core'
import { MemoryStore } from './memory-store'
import type { StoreErrorMode } from './options'
import {
  appliedLimits,
  giveBack,
  keyRefusal,
  outcomeOf,
  planOf,
  setAdmittedHeaders,
  settleHeld,
  slotIds,
  takeOne,
  type Held,
  type Outcome,
} from './key-reserve'
import { PartitionKeys, refuse, refuseStoreDown } from './refusal'
import { isRateLimitStore, isStoreUnavailable, type RateLimitStore, type ReserveResult } from './store'
import { estimateTokens } from './tokens'

export interface KeyLimitsOptions {
  /** Limits of every key that does not carry its own (a key's own value replaces the default). @default {} */
  defaults?: KeyLimits
  /** Where buckets, quotas and slots live; the gateway's shared store. @default a memoryStore() of its own */
  store?: RateLimitStore
  /** When the store cannot be reached: `allow` serves without the key's limits, `deny` answers 503. @default "allow" */
  onStoreError?: StoreErrorMode
  /** Names this limiter's buckets in the store. @default "key" */
  name?: string
  /** Send OpenAI's `x-ratelimit-*` headers on OpenAI routes (its SDKs read them). @default true */
  openaiHeaders?: boolean
  /** How long a concurrency slot is held at most, should a gateway die holding it, in ms. @default 600000 */
  concurrencyLeaseMs?: number
  /** Output tokens assumed for a request without request-guard's estimate. @default 4096 */
  defaultMaxTokens?: number
  onEvent?: SecurityEventHandler
  logger?: Logger
}

/** Counters of the key limiter. */
export interface KeyLimitStats {
  limited: number
  storeErrors: number
  failedOpen: number
  failedClosed: number
}

export type KeyLimitsHandler = RequestHandler & { stats(): KeyLimitStats; readonly store: RateLimitStore; shutdown(): Promise<void> }

const invalid = (message: string): GatehouseConfigError =>
  new GatehouseConfigError('GH_RL_INVALID_OPTIONS', `@gatehouse/rate-limit: keyLimits: ${message}`)

/**
 * Each client key's own limits: requests and tokens per minute (token buckets), monthly tokens
 * (a calendar-month quota, UTC) and concurrent requests, overall and per provider, from the key's
 * scope (`res.locals.gatehouse.clientKeyLimits`, set by client-auth) or `defaults`. Mount it after
 * client-auth and request-guard (it reserves request-guard's estimate). Every limit is one atomic
 * store operation; when one refuses, what the others took is given back. A refusal is a 429 in the
 * provider's shape naming the key's own limit, with `Retry-After`, the IETF `RateLimit` /
 * `RateLimit-Policy` fields and, on OpenAI routes, `x-ratelimit-*`; its event says `own_limit`
 * (requests, tokens and concurrency: true; the monthly quota: false). Token reservations settle on
 * `tokenCharge` when the response ends; concurrency slots are given back on every exit (finish,
 * close, a later layer's refusal or error, a client gone).
 */
export function keyLimits(options: KeyLimitsOptions = {}): KeyLimitsHandler {
  if (options === null || typeof options !== 'object') throw invalid('options must be an object')
  const defaults = options.defaults ?? {}
  for (const [name, v] of Object.entries(defaults)) {
    if (!(KEY_LIMIT_NAMES as readonly string[]).includes(name)) throw invalid(`defaults: unknown limit ${JSON.stringify(name)} (${KEY_LIMIT_NAMES.join(', ')})`)
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) throw invalid(`defaults.${name} must be a whole number of at least 1 (got ${JSON.stringify(v)})`)
  }
  if (options.store !== undefined && !isRateLimitStore(options.store)) throw invalid('store must be a rate-limit store (memoryStore(), redisStore())')
  const onStoreError = options.onStoreError ?? 'allow'
  if (onStoreError !== 'allow' && onStoreError !== 'deny') throw invalid(`onStoreError must be "allow" or "deny" (got ${JSON.stringify(onStoreError)})`)
  if (options.logger !== undefined && !isLogger(options.logger)) throw invalid('logger must have error, warn, info and debug methods')
  const name = options.name ?? 'key'
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw invalid(`name must be 1-64 letters, digits, . _ - (got ${JSON.stringify(name)})`)
  const leaseMs = options.concurrencyLeaseMs ?? 600_000
  if (!Number.isSafeInteger(leaseMs) || leaseMs < 1000) throw invalid('concurrencyLeaseMs must be a whole number of ms, at least 1000')
  const ownsStore = options.store === undefined
  const store = options.store ?? new MemoryStore()
  const logger = options.logger ?? noopLogger
  const openaiHeaders = options.openaiHeaders ?? true
  const defaultMaxTokens = options.defaultMaxTokens ?? 4096
  const counts: KeyLimitStats = { limited: 0, storeErrors: 0, failedOpen: 0, failedClosed: 0 }
  const partitionKeys = new PartitionKeys()
  const nextSlotId = slotIds()
  let lastLog = 0

  const countStoreError = (): void => void counts.storeErrors++

  const storeFailed = (err: unknown, req: Request, res: Response, next: NextFunction): void => {
    counts.storeErrors++
    const now = Date.now()
    if (now - lastLog > 5000) {
      lastLog = now
      logger.error(`@gatehouse/rate-limit: store unavailable; ${onStoreError === 'allow' ? 'serving without the key limits' : 'refusing with 503'} (onStoreError ${onStoreError})`, {
        code: 'GH_RL_STORE_UNAVAILABLE',
        limiter: name,
        error: err instanceof Error ? err.message : String(err),
      })
    }
    if (onStoreError === 'allow') {
      counts.failedOpen++
      next()
      return
    }
    counts.failedClosed++
    refuseStoreDown(req, res, options.onEvent, logger, 'key', name)
  }

  const handler = async function keyLimitsMiddleware(req: Request, res: Response, next: NextFunction): Promise<void> {
    const locals = gatehouseLocals(res)
    const keyId = locals.clientKeyId
    if (!keyId) return next()
    const limits = appliedLimits(res, defaults)
    if (limits.length === 0) return next()
    const estimate = locals.tokenEstimate
    const amount = estimate ? estimate.promptTokens + estimate.outputTokens : estimateTokens(req, defaultMaxTokens).total
    const isOpenAI = openaiHeaders && (locals.provider ?? locals.route?.provider) === 'openai'
    // Every limit of the request is asked at once: with a store that can (memory, Redis), in one
    // all-or-nothing step; otherwise each on its own, what the others took given back on a refusal.
    const plan = planOf(limits, name, keyId, amount, leaseMs, nextSlotId)
    let outcomes: Outcome[]
    let held: Held[]
    if (store.reserveAll) {
      let r: ReserveResult
      try {
        r = await store.reserveAll(plan.map((p) => p.op))
      } catch (err) {
        if (isStoreUnavailable(err)) return storeFailed(err, req, res, next)
        return next(err)
      }
      outcomes = plan.map((p, i) => outcomeOf(p, r.results[i]!))
      held = r.allowed ? plan.map((p) => p.held) : []
    } else {
      const settled = await Promise.allSettled(plan.map((p) => takeOne(store, p)))
      held = []
      settled.forEach((r, i) => {
        if (r.status === 'fulfilled' && r.value.allowed) held.push(outcomeOf(plan[i]!, r.value).held!)
      })
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failed) {
        giveBack(store, held, countStoreError)
        if (isStoreUnavailable(failed.reason)) return storeFailed(failed.reason, req, res, next)
        return next(failed.reason)
      }
      outcomes = settled.map((r, i) => outcomeOf(plan[i]!, (r as PromiseFulfilledResult<ReserveResult['results'][number]>).value))
    }
    const refusal = outcomes.find((o) => o.refused)
    if (refusal) {
      giveBack(store, held, countStoreError)
      counts.limited++
      refuse(req, res, options.onEvent, logger, keyRefusal(res, refusal, keyId, isOpenAI, name, amount, partitionKeys))
      return
    }
    setAdmittedHeaders(res, outcomes, keyId, isOpenAI, partitionKeys)
    if (held.length > 0) {
      // 'close' follows 'finish' on every response, and comes alone when the connection closed
      // first: one listener settles every way a response ends.
      res.once('close', () => settleHeld(store, held, tokenChargeOf(res, amount), countStoreError))
    }
    next()
  }
  const wrapped = function keyLimitsMiddleware(req: Request, res: Response, next: NextFunction): void {
    handler(req, res, next).catch(next)
  }
  return Object.assign(wrapped, {
    stats: (): KeyLimitStats => ({ ...counts }),
    store,
    shutdown: async (): Promise<void> => {
      if (ownsStore) await store.shutdown()
    },
  })
}

/** The tokens to settle on (core's tokenCharge), the reservation when nothing is known. */
function tokenChargeOf(res: Response, reserved: number): number {
  const charge = tokenChargeCore(res)
  return charge.source === 'unknown' ? reserved : charge.tokens
}
