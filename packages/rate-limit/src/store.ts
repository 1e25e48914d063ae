import { GatehouseError } from '@gatehouse/core'
import type { QuotaPeriod } from './period'

/** One token bucket: which one, and its shape. */
export interface BucketRef {
  /** Groups the buckets of one limiter (`req:ip`, `tok:provider`…); each namespace is bounded on its own. */
  namespace: string
  /** The client, key or provider the bucket belongs to. */
  key: string
  /** Most tokens the bucket holds (the burst). */
  capacity: number
  /** Tokens added back per second. */
  refillPerSecond: number
}

/** What a bucket operation found. Times are durations, so the store's clock never leaks into the caller's. */
export interface BucketState {
  /** True when a `take` was granted (always true for `adjust` and `peek`). */
  allowed: boolean
  /** Tokens in the bucket after the operation; negative after a settlement that went over. */
  tokens: number
  /** Milliseconds until the bucket is full again. */
  msUntilFull: number
  /** Milliseconds until the bucket holds `amount` tokens (0 when it already does). */
  msUntilAvailable: number
}

/** One quota counter. */
export interface QuotaRef {
  namespace: string
  key: string
  /** Tokens allowed per period. */
  limit: number
}

/** What a quota operation found. */
export interface QuotaState {
  allowed: boolean
  /** Tokens used (settled plus reserved) in `period`. */
  used: number
  /** The period the operation applied to (in the store's clock). */
  period: QuotaPeriod
  /** Milliseconds until that period ends, in the store's clock (0 for settlements). */
  msUntilReset: number
}

/** One set of concurrency slots (the requests in flight of one key, provider…). */
export interface SlotRef {
  namespace: string
  key: string
  /** Most slots held at once. */
  limit: number
  /**
   * How long a slot is held at most, in ms: a gateway that dies holding one (no release) frees it
   * when this runs out. Longer than any request may take.
   */
  leaseMs: number
}

/** What a slot acquisition found. */
export interface SlotState {
  allowed: boolean
  /** Slots held after the operation. */
  held: number
}

/** One limit of a request, for `reserveAll`. */
export type ReserveOp =
  | { kind: 'bucket'; ref: BucketRef; amount: number }
  | { kind: 'quota'; ref: QuotaRef; amount: number }
  | { kind: 'slot'; ref: SlotRef; id: string }

/** What `reserveAll` found: each limit's state, and whether all of them admitted (then all were taken). */
export interface ReserveResult {
  allowed: boolean
  results: Array<{ allowed: boolean; bucket?: BucketState; quota?: QuotaState; slot?: SlotState }>
}

/** Counters a store keeps about itself. */
export interface StoreStats {
  /** Operations that failed because the backend was unreachable or answered with an error. */
  errors: number
}

/**
 * Where buckets and quotas live. `memoryStore()` and `redisStore()` implement it; each operation is
 * atomic, so concurrent requests (and, with Redis, concurrent gateway instances) never admit more
 * than the bucket holds. Rejections are `StoreUnavailableError`.
 */
export interface RateLimitStore {
  readonly kind: string
  /** True when buckets live in this process only (express-rate-limit's `localKeys`). */
  readonly localKeys: boolean
  /** Take `amount` tokens if the bucket holds at least that many; never goes negative. */
  take(bucket: BucketRef, amount: number): Promise<BucketState>
  /** Remove `amount` tokens unconditionally (negative: give them back, up to capacity). */
  adjust(bucket: BucketRef, amount: number): Promise<BucketState>
  /** The bucket now, changing nothing. */
  peek(bucket: BucketRef): Promise<BucketState>
  /** Forget one bucket (it is full again). */
  resetBucket(namespace: string, key: string): Promise<void>
  /** Forget every bucket of a namespace. */
  resetNamespace(namespace: string): Promise<void>
  /** Reserve `amount` tokens of the current period if they fit under the limit. */
  quotaReserve(quota: QuotaRef, amount: number): Promise<QuotaState>
  /** Add `delta` (negative gives back) to the counter of `period`; dropped if that period is over. */
  quotaSettle(quota: QuotaRef, period: QuotaPeriod, delta: number): Promise<QuotaState>
  /** The counter of the current period, changing nothing. */
  quotaGet(quota: QuotaRef): Promise<QuotaState>
  /** Forget one quota counter. */
  quotaReset(namespace: string, key: string): Promise<void>
  /** Hold slot `id` if fewer than `limit` (live) slots are held; atomic. */
  slotAcquire(slots: SlotRef, id: string): Promise<SlotState>
  /** Give slot `id` back (nothing when it is not held). */
  slotRelease(slots: SlotRef, id: string): Promise<void>
  /**
   * Several limits of one request at once, all or nothing (one Lua script in Redis): when every
   * limit admits, all are taken; when one refuses, none is. Optional: without it, callers take
   * each limit on its own and give back on a refusal.
   */
  reserveAll?(ops: readonly ReserveOp[]): Promise<ReserveResult>
  /** True when the backend answers (for readiness checks). */
  ping(): Promise<boolean>
  stats(): StoreStats
  /** Stop timers, flush what must be kept, close connections the store opened. */
  shutdown(): Promise<void>
}

/** The backend could not be reached or failed; the middleware applies `onStoreError`. */
export class StoreUnavailableError extends GatehouseError {
  override name = 'StoreUnavailableError'
  constructor(message: string, options?: { cause?: unknown }) {
    super('GH_RL_STORE_UNAVAILABLE', `@gatehouse/rate-limit: ${message}`, 503, options)
  }
}

export const isStoreUnavailable = (e: unknown): e is StoreUnavailableError =>
  e instanceof Error && (e as { code?: unknown }).code === 'GH_RL_STORE_UNAVAILABLE'

const STORE_METHODS = [
  'take',
  'adjust',
  'peek',
  'resetBucket',
  'resetNamespace',
  'quotaReserve',
  'quotaSettle',
  'quotaGet',
  'quotaReset',
  'slotAcquire',
  'slotRelease',
  'ping',
  'stats',
  'shutdown',
] as const

export const isRateLimitStore = (v: unknown): v is RateLimitStore =>
  typeof v === 'object' &&
  v !== null &&
  STORE_METHODS.every((m) => typeof (v as Record<string, unknown>)[m] === 'function')

/** Refill, then describe the bucket. Shared by the memory store and mirrored by the Redis script. */
export function describeBucket(
  bucket: BucketRef,
  tokens: number,
  allowed: boolean,
  amount: number,
): BucketState {
  const perMs = bucket.refillPerSecond / 1000
  return {
    allowed,
    tokens,
    msUntilFull: tokens >= bucket.capacity ? 0 : Math.ceil((bucket.capacity - tokens) / perMs),
    msUntilAvailable: tokens >= amount ? 0 : Math.ceil((amount - tokens) / perMs),
  }
}
