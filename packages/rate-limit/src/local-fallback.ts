import { noopLogger, type Logger } from '@gatehouse/core'
import { MemoryStore } from './memory-store'
import type { QuotaPeriod } from './period'
import {
  isStoreUnavailable,
  type BucketRef,
  type BucketState,
  type QuotaRef,
  type QuotaState,
  type RateLimitStore,
  type ReserveOp,
  type ReserveResult,
  type SlotRef,
  type SlotState,
  type StoreStats,
} from './store'

export interface LocalFallbackOptions {
  /** The shared store (Redis) every replica enforces one limit in. */
  store: RateLimitStore
  /** How many gateway processes share `store`: while it is down each enforces limit ÷ replicas. @default 1 */
  replicas?: number
  /** How long after a failure the shared store is left alone before it is tried again, in ms. @default 500 */
  retryMs?: number
  /** Logs the switch to local limits (error) and back (info). @default a no-op logger */
  logger?: Logger
}

/** Quota counters whose last known use is remembered (they are keyed by provider or key id). */
const MAX_REMEMBERED = 10_000

/**
 * `store.on_error: local`: every operation goes to the shared store; when it is unreachable, this
 * replica enforces its share of each limit (capacity, refill, quota left and concurrency ÷
 * `replicas`) in a store of its own memory, and tries the shared store again `retryMs` later, so
 * limiting returns to the shared figures within about a second of Redis answering again, without a
 * restart. A quota's local share is what was left when the shared counter was last read, ÷
 * replicas. Settlements go to whichever store is in use when they happen: a reservation made
 * locally and settled after recovery is settled in the shared store (a small drift either way,
 * bounded by the requests in flight at the switch).
 */
export class LocalFallbackStore implements RateLimitStore {
  readonly kind: string
  readonly localKeys: boolean
  private readonly primary: RateLimitStore
  private readonly local = new MemoryStore()
  private readonly replicas: number
  private readonly retryMs: number
  private readonly logger: Logger
  private downUntil = 0
  private isDegraded = false
  private fallbacks = 0
  private readonly lastUsed = new Map<string, number>()

  constructor(options: LocalFallbackOptions) {
    this.primary = options.store
    this.kind = `${options.store.kind}+local`
    this.localKeys = options.store.localKeys
    this.replicas = Math.max(1, Math.floor(options.replicas ?? 1))
    this.retryMs = options.retryMs ?? 500
    this.logger = options.logger ?? noopLogger
    // All-or-nothing reservations only where the shared store offers them.
    if (!options.store.reserveAll) (this as { reserveAll?: unknown }).reserveAll = undefined
  }

  /** True while limits are enforced locally because the shared store failed. */
  degraded(): boolean {
    return this.isDegraded
  }

  /** Operations served by the local store so far. */
  fallbackCount(): number {
    return this.fallbacks
  }

  private async attempt<T>(shared: () => Promise<T>, local: () => Promise<T>): Promise<T> {
    if (Date.now() < this.downUntil) {
      this.fallbacks++
      return local()
    }
    try {
      const result = await shared()
      if (this.isDegraded) {
        this.isDegraded = false
        this.logger.info('@gatehouse/rate-limit: the shared store answers again; limits are shared again')
      }
      return result
    } catch (err) {
      if (!isStoreUnavailable(err)) throw err
      this.downUntil = Date.now() + this.retryMs
      if (!this.isDegraded) {
        this.isDegraded = true
        this.logger.error(`@gatehouse/rate-limit: the shared store is unreachable; each limit is enforced locally at 1/${this.replicas} (store.on_error local)`, {
          code: 'GH_RL_STORE_UNAVAILABLE',
          error: err.message,
        })
      }
      this.fallbacks++
      return local()
    }
  }

  private share(n: number): number {
    return Math.max(1, Math.floor(n / this.replicas))
  }

  private bucket(ref: BucketRef): BucketRef {
    return { ...ref, capacity: this.share(ref.capacity), refillPerSecond: ref.refillPerSecond / this.replicas }
  }

  private quotaShare(ref: QuotaRef): QuotaRef {
    const used = this.lastUsed.get(`${ref.namespace}\u0000${ref.key}`) ?? 0
    return { ...ref, limit: Math.max(0, Math.floor((ref.limit - used) / this.replicas)) }
  }

  private remember(ref: QuotaRef, state: QuotaState): QuotaState {
    const k = `${ref.namespace}\u0000${ref.key}`
    if (!this.lastUsed.has(k) && this.lastUsed.size >= MAX_REMEMBERED) this.lastUsed.delete(this.lastUsed.keys().next().value as string)
    this.lastUsed.set(k, state.used)
    return state
  }

  take(bucket: BucketRef, amount: number): Promise<BucketState> {
    return this.attempt(() => this.primary.take(bucket, amount), () => this.local.take(this.bucket(bucket), Math.min(amount, this.share(bucket.capacity))))
  }

  adjust(bucket: BucketRef, amount: number): Promise<BucketState> {
    return this.attempt(() => this.primary.adjust(bucket, amount), () => this.local.adjust(this.bucket(bucket), amount))
  }

  peek(bucket: BucketRef): Promise<BucketState> {
    return this.attempt(() => this.primary.peek(bucket), () => this.local.peek(this.bucket(bucket)))
  }

  async resetBucket(namespace: string, key: string): Promise<void> {
    await this.local.resetBucket(namespace, key)
    await this.primary.resetBucket(namespace, key)
  }

  async resetNamespace(namespace: string): Promise<void> {
    await this.local.resetNamespace(namespace)
    await this.primary.resetNamespace(namespace)
  }

  quotaReserve(quota: QuotaRef, amount: number): Promise<QuotaState> {
    return this.attempt(
      async () => this.remember(quota, await this.primary.quotaReserve(quota, amount)),
      () => this.local.quotaReserve(this.quotaShare(quota), amount),
    )
  }

  quotaSettle(quota: QuotaRef, period: QuotaPeriod, delta: number): Promise<QuotaState> {
    return this.attempt(
      async () => this.remember(quota, await this.primary.quotaSettle(quota, period, delta)),
      () => this.local.quotaSettle(this.quotaShare(quota), period, delta),
    )
  }

  quotaGet(quota: QuotaRef): Promise<QuotaState> {
    return this.attempt(
      async () => this.remember(quota, await this.primary.quotaGet(quota)),
      () => this.local.quotaGet(this.quotaShare(quota)),
    )
  }

  async quotaReset(namespace: string, key: string): Promise<void> {
    await this.local.quotaReset(namespace, key)
    await this.primary.quotaReset(namespace, key)
  }

  slotAcquire(slots: SlotRef, id: string): Promise<SlotState> {
    return this.attempt(() => this.primary.slotAcquire(slots, id), () => this.local.slotAcquire({ ...slots, limit: this.share(slots.limit) }, id))
  }

  async slotRelease(slots: SlotRef, id: string): Promise<void> {
    // A slot may have been taken in either store: give it back in both.
    await this.local.slotRelease(slots, id)
    await this.primary.slotRelease(slots, id).catch((err: unknown) => {
      if (!isStoreUnavailable(err)) throw err
    })
  }

  reserveAll(ops: readonly ReserveOp[]): Promise<ReserveResult> {
    const scaled = (): ReserveOp[] =>
      ops.map((op) =>
        op.kind === 'bucket'
          ? { ...op, ref: this.bucket(op.ref), amount: Math.min(op.amount, this.share(op.ref.capacity)) }
          : op.kind === 'quota'
            ? { ...op, ref: this.quotaShare(op.ref) }
            : { ...op, ref: { ...op.ref, limit: this.share(op.ref.limit) } },
      )
    const shared = this.primary.reserveAll?.bind(this.primary)
    return this.attempt(
      async () => {
        const r = await shared!(ops)
        ops.forEach((op, i) => {
          const q = r.results[i]?.quota
          if (op.kind === 'quota' && q) this.remember(op.ref, q)
        })
        return r
      },
      () => this.local.reserveAll(scaled()),
    )
  }

  ping(): Promise<boolean> {
    return this.primary.ping()
  }

  stats(): StoreStats {
    return this.primary.stats()
  }

  async shutdown(): Promise<void> {
    await this.local.shutdown()
    await this.primary.shutdown()
  }
}
