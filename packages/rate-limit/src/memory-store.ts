import type { Logger, SecurityEventHandler } from '@gatehouse/core'
import { BoundedLru } from './lru'
import { QuotaCounters } from './memory-quotas'
import { periodEnd, periodOf, type QuotaPeriod } from './period'
import {
  describeBucket,
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
import { resolveMemoryStoreOptions } from './store-options'

export interface MemoryStoreOptions {
  /**
   * Most buckets kept per namespace (per limiter: the per-IP buckets, the per-key buckets…). Past
   * it the least recently used bucket is forgotten, so a flood of distinct addresses cannot grow
   * memory without limit; a forgotten bucket starts full again.
   * @default 10000
   */
  maxKeys?: number | undefined
  /**
   * File that keeps the monthly quota counters across restarts (JSON, mode 0600, written
   * atomically). Without it, quotas in memory start from zero after a restart.
   */
  quotaFile?: string | undefined
  /**
   * Key of the quota file's integrity check (HMAC-SHA256), at least 32 bytes; needs `quotaFile`.
   * With it the file is written with an HMAC, and a file whose HMAC does not match (edited outside
   * the gateway) is refused fail-closed: it is moved aside, every monthly quota of the month counts
   * as spent, an error is logged naming the file (never the key) and a `security_violation` event
   * is emitted (`GH_RL_QUOTA_FILE_TAMPERED`). A file without an HMAC (written before the key was
   * given) is accepted once and written again with one.
   */
  quotaFileKey?: string | Uint8Array | undefined
  /**
   * How long quota changes may wait before they are written to `quotaFile`, in ms. A crash loses at
   * most this much accounting; `shutdown()` always writes.
   * @default 1000
   */
  quotaFlushMs?: number | undefined
  /** Logs quota-file writes that fail, and a quota file refused. @default a no-op logger */
  logger?: Logger | undefined
  /** Receives a `security_violation` event when the quota file fails its integrity check. */
  onEvent?: SecurityEventHandler | undefined
  /** The clock, in epoch ms. For tests. @default Date.now */
  clock?: (() => number) | undefined
}

interface Bucket {
  tokens: number
  at: number
}

const SEP = '\u0000'

/**
 * Buckets and quotas in this process: every operation is synchronous JavaScript, so it is atomic.
 * Buckets sit in one bounded LRU per namespace; quota counters (QuotaCounters) are never evicted
 * and are kept in `quotaFile`.
 */
export class MemoryStore implements RateLimitStore {
  readonly kind = 'memory'
  readonly localKeys = true
  private readonly maxKeys: number
  private readonly clock: () => number
  private readonly namespaces = new Map<string, BoundedLru<Bucket>>()
  private readonly quotas: QuotaCounters

  constructor(options: MemoryStoreOptions = {}) {
    const config = resolveMemoryStoreOptions(options)
    this.maxKeys = config.maxKeys
    this.clock = config.clock
    this.quotas = new QuotaCounters(config)
  }

  /** Slot id → lease end, per slot set (a set is dropped when empty). */
  private readonly slots = new Map<string, Map<string, number>>()

  slotAcquire(ref: SlotRef, id: string): Promise<SlotState> {
    const k = `${ref.namespace}${SEP}${ref.key}`
    const now = this.clock()
    const held = this.slots.get(k) ?? new Map<string, number>()
    for (const [slot, until] of held) if (until <= now) held.delete(slot)
    if (held.size >= ref.limit) return Promise.resolve({ allowed: false, held: held.size })
    held.set(id, now + ref.leaseMs)
    this.slots.set(k, held)
    return Promise.resolve({ allowed: true, held: held.size })
  }

  slotRelease(ref: SlotRef, id: string): Promise<void> {
    const k = `${ref.namespace}${SEP}${ref.key}`
    const held = this.slots.get(k)
    if (held) {
      held.delete(id)
      if (held.size === 0) this.slots.delete(k)
    }
    return Promise.resolve()
  }

  reserveAll(ops: readonly ReserveOp[]): Promise<ReserveResult> {
    // Synchronous JavaScript: checking every limit, then taking them, is one atomic step.
    const now = this.clock()
    const period = periodOf(now)
    const results: ReserveResult['results'] = []
    let all = true
    for (const op of ops) {
      if (op.kind === 'bucket') {
        const tokens = this.level(op.ref, now)
        const ok = tokens >= op.amount
        all &&= ok
        results.push({ allowed: ok, bucket: describeBucket(op.ref, tokens, ok, ok ? 1 : op.amount) })
      } else if (op.kind === 'quota') {
        const current = this.quotas.used(op.ref, period)
        const ok = op.amount === 0 || op.ref.limit - current >= op.amount
        all &&= ok
        results.push({ allowed: ok, quota: { allowed: ok, used: current, period, msUntilReset: periodEnd(period) - now } })
      } else {
        const held = this.slots.get(`${op.ref.namespace}${SEP}${op.ref.key}`)
        let live = 0
        for (const until of held?.values() ?? []) if (until > now) live++
        const ok = live < op.ref.limit
        all &&= ok
        results.push({ allowed: ok, slot: { allowed: ok, held: live } })
      }
    }
    if (all) {
      ops.forEach((op, i) => {
        const r = results[i]!
        if (op.kind === 'bucket') {
          const tokens = this.level(op.ref, now) - op.amount
          this.save(op.ref, tokens, now)
          r.bucket = describeBucket(op.ref, tokens, true, 1)
        } else if (op.kind === 'quota') {
          const entry = this.quotas.entry(op.ref, period)
          this.quotas.add(entry, op.amount)
          r.quota = { allowed: true, used: entry.used, period, msUntilReset: periodEnd(period) - now }
        } else {
          void this.slotAcquire(op.ref, op.id)
          r.slot = { allowed: true, held: (r.slot?.held ?? 0) + 1 }
        }
      })
    }
    return Promise.resolve({ allowed: all, results })
  }

  /** Buckets held for one namespace (for tests and metrics). */
  size(namespace: string): number {
    return this.namespaces.get(namespace)?.size ?? 0
  }

  private lru(namespace: string): BoundedLru<Bucket> {
    let lru = this.namespaces.get(namespace)
    if (!lru) {
      lru = new BoundedLru<Bucket>(this.maxKeys)
      this.namespaces.set(namespace, lru)
    }
    return lru
  }

  /** Current tokens after refill; does not store anything. */
  private level(bucket: BucketRef, now: number): number {
    const b = this.namespaces.get(bucket.namespace)?.peek(bucket.key)
    if (!b) return bucket.capacity
    const elapsed = Math.max(0, now - b.at)
    return Math.min(bucket.capacity, b.tokens + (elapsed * bucket.refillPerSecond) / 1000)
  }

  private save(bucket: BucketRef, tokens: number, now: number): void {
    const lru = this.lru(bucket.namespace)
    // A full bucket is the same as no bucket: dropping it keeps the map small.
    if (tokens >= bucket.capacity) {
      lru.delete(bucket.key)
      return
    }
    const b = lru.get(bucket.key)
    if (b) {
      b.tokens = tokens
      b.at = now
    } else lru.set(bucket.key, { tokens, at: now })
  }

  take(bucket: BucketRef, amount: number): Promise<BucketState> {
    const now = this.clock()
    let tokens = this.level(bucket, now)
    const allowed = tokens >= amount
    if (allowed) {
      tokens -= amount
      this.save(bucket, tokens, now)
    } else {
      // A refusal is use too: a limited client's bucket must not be the first one a flood evicts.
      this.namespaces.get(bucket.namespace)?.get(bucket.key)
    }
    return Promise.resolve(describeBucket(bucket, tokens, allowed, allowed ? 1 : amount))
  }

  adjust(bucket: BucketRef, amount: number): Promise<BucketState> {
    const now = this.clock()
    const tokens = Math.min(bucket.capacity, this.level(bucket, now) - amount)
    this.save(bucket, tokens, now)
    return Promise.resolve(describeBucket(bucket, tokens, true, 1))
  }

  peek(bucket: BucketRef): Promise<BucketState> {
    return Promise.resolve(describeBucket(bucket, this.level(bucket, this.clock()), true, 1))
  }

  resetBucket(namespace: string, key: string): Promise<void> {
    this.namespaces.get(namespace)?.delete(key)
    return Promise.resolve()
  }

  resetNamespace(namespace: string): Promise<void> {
    this.namespaces.delete(namespace)
    return Promise.resolve()
  }

  quotaReserve(quota: QuotaRef, amount: number): Promise<QuotaState> {
    return Promise.resolve(this.quotas.reserve(quota, amount))
  }

  quotaSettle(quota: QuotaRef, period: QuotaPeriod, delta: number): Promise<QuotaState> {
    return Promise.resolve(this.quotas.settle(quota, period, delta))
  }

  quotaGet(quota: QuotaRef): Promise<QuotaState> {
    return Promise.resolve(this.quotas.get(quota))
  }

  quotaReset(namespace: string, key: string): Promise<void> {
    this.quotas.reset(namespace, key)
    return Promise.resolve()
  }

  ping(): Promise<boolean> {
    return Promise.resolve(true)
  }

  stats(): StoreStats {
    return { errors: this.quotas.errors }
  }

  /** Write the quota counters now (one write at a time; a write that fails is logged and retried on the next change). */
  flush(): Promise<void> {
    return this.quotas.flush()
  }

  async shutdown(): Promise<void> {
    await this.quotas.shutdown()
    this.namespaces.clear()
  }
}

/** A store that keeps buckets and quotas in this process. */
export function memoryStore(options: MemoryStoreOptions = {}): MemoryStore {
  return new MemoryStore(options)
}
