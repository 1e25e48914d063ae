import type { ClientRateLimitInfo, Options, Store } from 'express-rate-limit'
import { GatehouseConfigError } from '@gatehouse/core'
import { MemoryStore } from './memory-store'
import { isRateLimitStore, type BucketRef, type BucketState, type RateLimitStore } from './store'

export interface TokenBucketStoreOptions {
  /** Where the buckets live. @default a new memoryStore() */
  store?: RateLimitStore | undefined
  /** Names these buckets inside the store. @default "erl" */
  namespace?: string | undefined
  /** The bucket size. @default express-rate-limit's `limit` */
  capacity?: number | undefined
  /** Tokens added back per second. @default express-rate-limit's `limit / windowMs` */
  refillPerSecond?: number | undefined
}

/**
 * A token-bucket `Store` for express-rate-limit. The bucket maps onto the hit count the library
 * expects: an admitted request reports `capacity - tokens left` hits (so `RateLimit-Remaining` is
 * the tokens left), a refused one reports `capacity + 1`; `resetTime` is when the bucket is full
 * again, or, on a refusal, when the next token arrives (which becomes `Retry-After`). Every
 * express-rate-limit option keeps working: with only `limit` and `windowMs` given, the bucket holds
 * `limit` tokens and refills `limit` per `windowMs`, smoothly instead of all at once.
 */
export class TokenBucketStore implements Store {
  readonly localKeys: boolean
  readonly prefix: string
  readonly backend: RateLimitStore
  private capacity: number | undefined
  private refillPerSecond: number | undefined

  constructor(options: TokenBucketStoreOptions = {}) {
    if (options.store !== undefined && !isRateLimitStore(options.store)) {
      throw new GatehouseConfigError(
        'GH_RL_STORE_INVALID',
        '@gatehouse/rate-limit: TokenBucketStore store must be a RateLimitStore',
      )
    }
    for (const k of ['capacity', 'refillPerSecond'] as const) {
      const v = options[k]
      if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v > 0)) {
        throw new GatehouseConfigError(
          'GH_RL_INVALID_OPTIONS',
          `@gatehouse/rate-limit: TokenBucketStore ${k} must be a positive number (got ${JSON.stringify(v)})`,
        )
      }
    }
    if (options.capacity !== undefined && !Number.isInteger(options.capacity)) {
      throw new GatehouseConfigError(
        'GH_RL_INVALID_OPTIONS',
        `@gatehouse/rate-limit: TokenBucketStore capacity must be an integer (got ${JSON.stringify(options.capacity)})`,
      )
    }
    this.backend = options.store ?? new MemoryStore()
    this.localKeys = this.backend.localKeys
    this.prefix = options.namespace ?? 'erl'
    this.capacity = options.capacity
    this.refillPerSecond = options.refillPerSecond
  }

  /** Called by express-rate-limit: take the bucket's shape from `limit` and `windowMs` when not given. */
  init(options: Options): void {
    if (this.capacity === undefined) {
      if (typeof options.limit !== 'number' || !(options.limit >= 1)) {
        throw new GatehouseConfigError(
          'GH_RL_INVALID_OPTIONS',
          '@gatehouse/rate-limit: TokenBucketStore needs a numeric express-rate-limit limit, or its own capacity',
        )
      }
      this.capacity = Math.floor(options.limit)
    }
    this.refillPerSecond ??= (this.capacity * 1000) / options.windowMs
  }

  private ref(key: string): BucketRef {
    if (this.capacity === undefined || this.refillPerSecond === undefined) {
      throw new GatehouseConfigError(
        'GH_RL_INVALID_OPTIONS',
        '@gatehouse/rate-limit: TokenBucketStore used before express-rate-limit initialised it',
      )
    }
    return { namespace: this.prefix, key, capacity: this.capacity, refillPerSecond: this.refillPerSecond }
  }

  private info(ref: BucketRef, state: BucketState): ClientRateLimitInfo {
    const totalHits = state.allowed
      ? Math.max(1, ref.capacity - Math.max(0, Math.floor(state.tokens)))
      : ref.capacity + 1
    const ms = state.allowed ? state.msUntilFull : Math.max(1, state.msUntilAvailable)
    return { totalHits, resetTime: new Date(Date.now() + ms) }
  }

  async increment(key: string): Promise<ClientRateLimitInfo> {
    const ref = this.ref(key)
    return this.info(ref, await this.backend.take(ref, 1))
  }

  /** express-rate-limit calls this for skipped requests (skipSuccessfulRequests…): give the token back. */
  async decrement(key: string): Promise<void> {
    await this.backend.adjust(this.ref(key), -1)
  }

  async get(key: string): Promise<ClientRateLimitInfo | undefined> {
    const ref = this.ref(key)
    const state = await this.backend.peek(ref)
    if (state.tokens >= ref.capacity) return undefined
    return {
      totalHits: Math.max(0, ref.capacity - Math.max(0, Math.floor(state.tokens))),
      resetTime: new Date(Date.now() + state.msUntilFull),
    }
  }

  async resetKey(key: string): Promise<void> {
    await this.backend.resetBucket(this.prefix, key)
  }

  async resetAll(): Promise<void> {
    await this.backend.resetNamespace(this.prefix)
  }
}
