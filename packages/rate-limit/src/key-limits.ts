import { randomBytes } from 'node:crypto'
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
import { periodEnd, periodStart, type QuotaPeriod } from './period'
import { refuse, refuseStoreDown, setRateLimitHeaders, type LimitKind } from './refusal'
import { isRateLimitStore, isStoreUnavailable, type BucketRef, type QuotaRef, type RateLimitStore, type ReserveOp, type ReserveResult, type SlotRef } from './store'
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

/** One limit that applies to a request: the key's overall figure or its figure for this provider. */
interface Applied {
  limit: keyof KeyLimits
  value: number
  /** `*` for the key's overall limit, else the provider. */
  scope: string
}

/** What was taken, to give back on a refusal later in the list, or settle when the response ends. */
type Held =
  | { kind: 'bucket'; ref: BucketRef; amount: number; tokens: boolean }
  | { kind: 'quota'; ref: QuotaRef; amount: number; period: QuotaPeriod }
  | { kind: 'slot'; ref: SlotRef; id: string }

const KIND: Record<keyof KeyLimits, LimitKind> = {
  requests_per_minute: 'requests',
  tokens_per_minute: 'tokens',
  monthly_tokens: 'quota',
  concurrency: 'concurrency',
}

const WHAT: Record<keyof KeyLimits, string> = {
  requests_per_minute: 'requests per minute',
  tokens_per_minute: 'tokens per minute',
  monthly_tokens: 'tokens per month',
  concurrency: 'concurrent requests',
}

/** Slot ids: unique per process (a random prefix) and per request (a counter), without a UUID each time. */
const SLOT_PREFIX = `${randomBytes(6).toString('hex')}-`
let slotSeq = 0

const invalid = (message: string): GatehouseConfigError =>
  new GatehouseConfigError('GH_RL_INVALID_OPTIONS', `@gatehouse/rate-limit: keyLimits: ${message}`)

/** OpenAI's reset format: `1s`, `6m0s`, `1h2m3s`. */
function openaiDuration(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds))
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const r = s % 60
  return h > 0 ? `${h}h${m}m${r}s` : m > 0 ? `${m}m${r}s` : `${r}s`
}

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
  let lastLog = 0

  const applied = (res: Response): Applied[] => {
    const locals = gatehouseLocals(res)
    const own = locals.clientKeyLimits
    const out: Applied[] = []
    for (const limit of KEY_LIMIT_NAMES) {
      const value = own?.[limit] ?? defaults[limit]
      if (value !== undefined) out.push({ limit, value, scope: '*' })
    }
    const provider = locals.provider
    const perProvider = provider !== undefined ? own?.providers?.[provider] : undefined
    if (perProvider && provider !== undefined) {
      for (const limit of KEY_LIMIT_NAMES) {
        const value = perProvider[limit]
        if (value !== undefined) out.push({ limit, value, scope: provider })
      }
    }
    return out
  }

  const giveBack = (held: Held[]): void => {
    for (const h of held) {
      const p =
        h.kind === 'bucket'
          ? store.adjust(h.ref, -h.amount)
          : h.kind === 'quota'
            ? store.quotaSettle(h.ref, h.period, -h.amount)
            : store.slotRelease(h.ref, h.id)
      p.catch(() => counts.storeErrors++)
    }
  }

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
    const limits = applied(res)
    if (limits.length === 0) return next()
    const estimate = locals.tokenEstimate
    const amount = estimate ? estimate.promptTokens + estimate.outputTokens : estimateTokens(req, defaultMaxTokens).total
    const isOpenAI = openaiHeaders && (locals.provider ?? locals.route?.provider) === 'openai'
    // Every limit of the request is asked at once: with a store that can (memory, Redis), in one
    // all-or-nothing step; otherwise each on its own, what the others took given back on a refusal.
    type Outcome = { a: Applied; held?: Held; refused?: { retryAfter: number; remaining: number; windowSeconds: number }; tokens?: number; msUntilFull?: number }
    const plan: Array<{ a: Applied; op: ReserveOp; held: Held }> = []
    for (const a of limits) {
      const namespace = `key-${a.limit}:${name}:${a.scope}`
      if (a.limit === 'requests_per_minute' || a.limit === 'tokens_per_minute') {
        const tokens = a.limit === 'tokens_per_minute'
        const want = tokens ? Math.min(amount, a.value) : 1
        if (want === 0) continue
        const ref: BucketRef = { namespace, key: keyId, capacity: a.value, refillPerSecond: a.value / 60 }
        plan.push({ a, op: { kind: 'bucket', ref, amount: want }, held: { kind: 'bucket', ref, amount: want, tokens } })
      } else if (a.limit === 'monthly_tokens') {
        if (amount === 0) continue
        const ref: QuotaRef = { namespace, key: keyId, limit: a.value }
        plan.push({ a, op: { kind: 'quota', ref, amount }, held: { kind: 'quota', ref, amount, period: 0 } })
      } else {
        const ref: SlotRef = { namespace, key: keyId, limit: a.value, leaseMs }
        const id = `${SLOT_PREFIX}${++slotSeq}`
        plan.push({ a, op: { kind: 'slot', ref, id }, held: { kind: 'slot', ref, id } })
      }
    }
    const outcomeOf = (p: (typeof plan)[number], r: ReserveResult['results'][number]): Outcome => {
      if (p.op.kind === 'bucket') {
        const st = r.bucket!
        return r.allowed
          ? { a: p.a, held: p.held, tokens: st.tokens, msUntilFull: st.msUntilFull }
          : { a: p.a, refused: { retryAfter: st.msUntilAvailable / 1000, remaining: st.tokens, windowSeconds: 60 } }
      }
      if (p.op.kind === 'quota') {
        const st = r.quota!
        if (p.held.kind === 'quota') p.held.period = st.period
        return r.allowed
          ? { a: p.a, held: p.held }
          : { a: p.a, refused: { retryAfter: st.msUntilReset / 1000, remaining: Math.max(0, p.a.value - st.used), windowSeconds: (periodEnd(st.period) - periodStart(st.period)) / 1000 } }
      }
      return r.allowed ? { a: p.a, held: p.held } : { a: p.a, refused: { retryAfter: 1, remaining: 0, windowSeconds: 1 } }
    }
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
      const take = (p: (typeof plan)[number]): Promise<ReserveResult['results'][number]> =>
        p.op.kind === 'bucket'
          ? store.take(p.op.ref, p.op.amount).then((bucket) => ({ allowed: bucket.allowed, bucket }))
          : p.op.kind === 'quota'
            ? store.quotaReserve(p.op.ref, p.op.amount).then((quota) => ({ allowed: quota.allowed, quota }))
            : store.slotAcquire(p.op.ref, p.op.id).then((slot) => ({ allowed: slot.allowed, slot }))
      const settled = await Promise.allSettled(plan.map(take))
      held = []
      settled.forEach((r, i) => {
        if (r.status === 'fulfilled' && r.value.allowed) held.push(outcomeOf(plan[i]!, r.value).held!)
      })
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failed) {
        giveBack(held)
        if (isStoreUnavailable(failed.reason)) return storeFailed(failed.reason, req, res, next)
        return next(failed.reason)
      }
      outcomes = settled.map((r, i) => outcomeOf(plan[i]!, (r as PromiseFulfilledResult<ReserveResult['results'][number]>).value))
    }
    const refusal = outcomes.find((o) => o.refused)
    if (!refusal) {
      for (const o of outcomes) {
        if (o.a.scope !== '*' || o.tokens === undefined) continue
        const tokens = o.a.limit === 'tokens_per_minute'
        setRateLimitHeaders(res, 'draft-8', { limit: o.a.value, remaining: o.tokens, resetSeconds: (o.msUntilFull ?? 0) / 1000, windowSeconds: 60, name: `key-${tokens ? 'tpm' : 'rpm'}`, key: keyId })
        if (isOpenAI) {
          const which = tokens ? 'tokens' : 'requests'
          res.setHeader(`x-ratelimit-limit-${which}`, String(o.a.value))
          res.setHeader(`x-ratelimit-remaining-${which}`, String(Math.max(0, Math.floor(o.tokens))))
          res.setHeader(`x-ratelimit-reset-${which}`, openaiDuration((o.msUntilFull ?? 0) / 1000))
        }
      }
    } else {
      const a = refusal.a
      const refused = refusal.refused!
      giveBack(held)
      counts.limited++
      const whose = a.scope === '*' ? 'this API key' : `this API key on ${a.scope}`
      setRateLimitHeaders(res, 'draft-8', { limit: a.value, remaining: refused.remaining, resetSeconds: refused.retryAfter, windowSeconds: refused.windowSeconds, name: `key-${a.limit}`, key: keyId })
      if (isOpenAI && (a.limit === 'requests_per_minute' || a.limit === 'tokens_per_minute')) {
        const which = a.limit === 'tokens_per_minute' ? 'tokens' : 'requests'
        res.setHeader(`x-ratelimit-limit-${which}`, String(a.value))
        res.setHeader(`x-ratelimit-remaining-${which}`, String(Math.max(0, Math.floor(refused.remaining))))
        res.setHeader(`x-ratelimit-reset-${which}`, openaiDuration(refused.retryAfter))
      }
      const need = a.limit === 'tokens_per_minute' || a.limit === 'monthly_tokens' ? `; this request needs up to ${amount} tokens` : ''
      refuse(req, res, options.onEvent, logger, {
        kind: KIND[a.limit],
        scope: 'key',
        name,
        limit: a.value,
        retryAfterSeconds: refused.retryAfter,
        message:
          a.limit === 'monthly_tokens'
            ? `Monthly token quota exhausted for ${whose}: ${Math.floor(refused.remaining)} of ${a.value} tokens left${need}. The quota resets at ${new Date(Date.now() + refused.retryAfter * 1000).toISOString()}.`
            : `Rate limit exceeded for ${whose}: ${a.value} ${WHAT[a.limit]}${need}. Retry after ${Math.max(1, Math.ceil(refused.retryAfter))} second${Math.ceil(refused.retryAfter) <= 1 ? '' : 's'}.`,
      })
      return
    }
    if (held.length > 0) {
      let done = false
      const settle = (): void => {
        if (done) return
        done = true
        res.off('finish', settle)
        res.off('close', settle)
        const charge = tokenChargeOf(res, amount)
        for (const h of held) {
          const p =
            h.kind === 'slot'
              ? store.slotRelease(h.ref, h.id)
              : h.kind === 'bucket'
                ? h.tokens && charge !== h.amount
                  ? store.adjust(h.ref, charge - h.amount)
                  : undefined
                : charge !== h.amount
                  ? store.quotaSettle(h.ref, h.period, charge - h.amount)
                  : undefined
          p?.catch(() => counts.storeErrors++)
        }
      }
      res.once('finish', settle)
      res.once('close', settle)
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
