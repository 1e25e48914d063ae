import type { Logger } from '@gatehouse/core'
import { BoundedLru } from './lru'
import { periodEnd, periodOf, type QuotaPeriod } from './period'
import { loadQuotaFile, writeQuotaFile, type QuotaEntry } from './quota-file'
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
import { resolveMemoryStoreOptions } from './options'

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
   * How long quota changes may wait before they are written to `quotaFile`, in ms. A crash loses at
   * most this much accounting; `shutdown()` always writes.
   * @default 1000
   */
  quotaFlushMs?: number | undefined
  /** Logs quota-file writes that fail. @default a no-op logger */
  logger?: Logger | undefined
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
 * Buckets sit in one bounded LRU per namespace; quota counters are never evicted (they are keyed by
 * provider or authenticated key id, not by anything a client picks) and are kept in `quotaFile`.
 */
export class MemoryStore implements RateLimitStore {
  readonly kind = 'memory'
  readonly localKeys = true
  private readonly maxKeys: number
  private readonly clock: () => number
  private readonly logger: Logger
  private readonly namespaces = new Map<string, BoundedLru<Bucket>>()
  private readonly quotas: Map<string, QuotaEntry>
  private readonly quotaFile: string | undefined
  private readonly quotaFlushMs: number
  private flushTimer: NodeJS.Timeout | undefined
  private writing: Promise<void> = Promise.resolve()
  private dirty = false
  private errors = 0

  constructor(options: MemoryStoreOptions = {}) {
    const config = resolveMemoryStoreOptions(options)
    this.maxKeys = config.maxKeys
    this.clock = config.clock
    this.logger = config.logger
    this.quotaFile = config.quotaFile
    this.quotaFlushMs = config.quotaFlushMs
    this.quotas = this.quotaFile
      ? loadQuotaFile(this.quotaFile, (msg) => this.logger.warn(`@gatehouse/rate-limit: ${msg}`))
      : new Map()
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
        const used = this.quotas.get(`${op.ref.namespace}${SEP}${op.ref.key}`)
        const current = used && used.period === period ? used.used : 0
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
          const entry = this.quotaEntry(op.ref, period)
          if (op.amount !== 0) {
            entry.used += op.amount
            this.changed()
          }
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

  private quotaEntry(quota: QuotaRef, period: QuotaPeriod): QuotaEntry {
    const id = `${quota.namespace}${SEP}${quota.key}`
    let entry = this.quotas.get(id)
    if (!entry || entry.period !== period) {
      entry = { period, used: 0 }
      this.quotas.set(id, entry)
    }
    return entry
  }

  quotaReserve(quota: QuotaRef, amount: number): Promise<QuotaState> {
    const now = this.clock()
    const period = periodOf(now)
    const entry = this.quotaEntry(quota, period)
    // A request that reserves nothing (GET /v1/models) is never refused by a quota.
    const allowed = amount === 0 || quota.limit - entry.used >= amount
    if (allowed && amount !== 0) {
      entry.used += amount
      this.changed()
    }
    return Promise.resolve({ allowed, used: entry.used, period, msUntilReset: periodEnd(period) - now })
  }

  quotaSettle(quota: QuotaRef, period: QuotaPeriod, delta: number): Promise<QuotaState> {
    const entry = this.quotas.get(`${quota.namespace}${SEP}${quota.key}`)
    if (!entry || entry.period !== period) {
      // The month the tokens were reserved in is over; its counter is gone.
      return Promise.resolve({
        allowed: false,
        used: entry?.used ?? 0,
        period: entry?.period ?? period,
        msUntilReset: 0,
      })
    }
    if (delta !== 0) {
      entry.used = Math.max(0, entry.used + delta)
      this.changed()
    }
    return Promise.resolve({ allowed: true, used: entry.used, period, msUntilReset: 0 })
  }

  quotaGet(quota: QuotaRef): Promise<QuotaState> {
    const now = this.clock()
    const period = periodOf(now)
    const entry = this.quotas.get(`${quota.namespace}${SEP}${quota.key}`)
    return Promise.resolve({
      allowed: true,
      used: entry && entry.period === period ? entry.used : 0,
      period,
      msUntilReset: periodEnd(period) - now,
    })
  }

  quotaReset(namespace: string, key: string): Promise<void> {
    if (this.quotas.delete(`${namespace}${SEP}${key}`)) this.changed()
    return Promise.resolve()
  }

  ping(): Promise<boolean> {
    return Promise.resolve(true)
  }

  stats(): StoreStats {
    return { errors: this.errors }
  }

  private changed(): void {
    if (!this.quotaFile) return
    this.dirty = true
    if (this.flushTimer) return
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined
      void this.flush()
    }, this.quotaFlushMs)
    this.flushTimer.unref()
  }

  /** Write the quota counters now (one write at a time; a write that fails is logged and retried on the next change). */
  flush(): Promise<void> {
    const file = this.quotaFile
    if (!file) return Promise.resolve()
    this.writing = this.writing.then(async () => {
      if (!this.dirty) return
      this.dirty = false
      const current = periodOf(this.clock())
      for (const [id, entry] of this.quotas) if (entry.period < current) this.quotas.delete(id)
      try {
        await writeQuotaFile(file, this.quotas)
      } catch (err) {
        this.errors++
        this.dirty = true
        this.logger.error('@gatehouse/rate-limit: could not write the quota file', {
          code: (err as NodeJS.ErrnoException).code ?? 'unknown',
        })
      }
    })
    return this.writing
  }

  async shutdown(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    await this.flush()
    this.namespaces.clear()
  }
}

/** A store that keeps buckets and quotas in this process. */
export function memoryStore(options: MemoryStoreOptions = {}): MemoryStore {
  return new MemoryStore(options)
}
