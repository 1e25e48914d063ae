import { noopLogger, type Logger } from '@gatehouse/core'
import type { Redis } from 'ioredis'
import { RedisConnection } from './redis-connection'
import { BUCKET_SCRIPT, QUOTA_SCRIPT, RESERVE_SCRIPT, SLOT_SCRIPT } from './redis-scripts'
import { resolveRedisStoreOptions } from './store-options'
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
import { periodEnd, type QuotaPeriod } from './period'

export interface RedisStoreOptions {
  /**
   * An ioredis client you created and own (the store never closes it). Give it
   * `enableOfflineQueue: false` so that commands fail at once while Redis is down instead of
   * queueing; the store also bounds every command with `commandTimeoutMs`.
   */
  client?: Redis | undefined
  /** A `redis://` or `rediss://` URL: the store creates, tunes and closes its own ioredis client. */
  url?: string | undefined
  /**
   * Prefix of every key the store writes. Instances that share a prefix share their limits.
   * @default "gatehouse:rl:"
   */
  prefix?: string | undefined
  /**
   * Longest wait for one Redis operation (and for the first connection) before the request is
   * handled as "store unavailable", in ms.
   * @default 500
   */
  commandTimeoutMs?: number | undefined
  /** Logs connection loss and recovery (at warn and info). @default a no-op logger */
  logger?: Logger | undefined
}

const QUOTA_TTL_SECONDS = 62 * 24 * 3600

/**
 * Buckets and quotas in Redis: one Lua script per decision (atomic across every gateway instance
 * that uses the same prefix), timed by Redis's clock. When Redis is unreachable each operation
 * rejects with `StoreUnavailableError` after at most `commandTimeoutMs`; when it comes back the
 * client reconnects on its own and limiting resumes.
 */
export class RedisStore implements RateLimitStore {
  readonly kind = 'redis'
  readonly localKeys = false
  readonly prefix: string
  readonly client: Redis
  private readonly conn: RedisConnection

  constructor(options: RedisStoreOptions) {
    const config = resolveRedisStoreOptions(options)
    this.prefix = config.prefix
    this.conn = new RedisConnection(config, config.commandTimeoutMs, config.logger ?? noopLogger)
    this.client = this.conn.client
  }

  private bucketKey(namespace: string, key: string): string {
    return `${this.prefix}b:${namespace}:${key}`
  }

  private quotaKey(namespace: string, key: string): string {
    return `${this.prefix}q:${namespace}:${key}`
  }

  private async bucket(
    bucket: BucketRef,
    op: 'take' | 'adjust' | 'peek',
    amount: number,
  ): Promise<BucketState> {
    const reply = (await this.conn.run(BUCKET_SCRIPT, this.bucketKey(bucket.namespace, bucket.key), [
      bucket.capacity,
      (bucket.refillPerSecond / 1000).toPrecision(17),
      op,
      amount,
    ])) as [number, string]
    const allowed = Number(reply[0]) === 1
    const tokens = Number(reply[1])
    return describeBucket(bucket, tokens, allowed, allowed || op !== 'take' ? 1 : amount)
  }

  take(bucket: BucketRef, amount: number): Promise<BucketState> {
    return this.bucket(bucket, 'take', amount)
  }

  adjust(bucket: BucketRef, amount: number): Promise<BucketState> {
    return this.bucket(bucket, 'adjust', amount)
  }

  peek(bucket: BucketRef): Promise<BucketState> {
    return this.bucket(bucket, 'peek', 0)
  }

  resetBucket(namespace: string, key: string): Promise<void> {
    return this.conn.del(this.bucketKey(namespace, key))
  }

  /** Delete a namespace's buckets with SCAN (bounded batches, never KEYS or FLUSHALL). */
  resetNamespace(namespace: string): Promise<void> {
    return this.conn.delMatching(`${`${this.prefix}b:${namespace}:`.replace(/[*?[\]\\]/g, '\\$&')}*`)
  }

  private async quota(
    quota: QuotaRef,
    op: 'reserve' | 'settle' | 'get',
    amount: number,
    settlePeriod = 0,
  ): Promise<QuotaState> {
    const reply = (await this.conn.run(QUOTA_SCRIPT, this.quotaKey(quota.namespace, quota.key), [
      op,
      quota.limit,
      amount,
      settlePeriod,
      QUOTA_TTL_SECONDS,
    ])) as [number, number, number, string?]
    const period = Number(reply[2])
    const msUntilReset = reply[3] === undefined ? 0 : Math.max(0, periodEnd(period) - Number(reply[3]))
    return { allowed: Number(reply[0]) === 1, used: Number(reply[1]), period, msUntilReset }
  }

  quotaReserve(quota: QuotaRef, amount: number): Promise<QuotaState> {
    return this.quota(quota, 'reserve', amount)
  }

  quotaSettle(quota: QuotaRef, period: QuotaPeriod, delta: number): Promise<QuotaState> {
    return this.quota(quota, 'settle', delta, period)
  }

  quotaGet(quota: QuotaRef): Promise<QuotaState> {
    return this.quota(quota, 'get', 0)
  }

  quotaReset(namespace: string, key: string): Promise<void> {
    return this.conn.del(this.quotaKey(namespace, key))
  }

  private slotKey(namespace: string, key: string): string {
    return `${this.prefix}s:${namespace}:${key}`
  }

  async slotAcquire(slots: SlotRef, id: string): Promise<SlotState> {
    const reply = (await this.conn.run(SLOT_SCRIPT, this.slotKey(slots.namespace, slots.key), ['acquire', slots.limit, Math.ceil(slots.leaseMs), id])) as [number, number]
    return { allowed: Number(reply[0]) === 1, held: Number(reply[1]) }
  }

  async slotRelease(slots: SlotRef, id: string): Promise<void> {
    await this.conn.run(SLOT_SCRIPT, this.slotKey(slots.namespace, slots.key), ['release', slots.limit, 0, id])
  }

  async reserveAll(ops: readonly ReserveOp[]): Promise<ReserveResult> {
    const keys: string[] = []
    const args: (string | number)[] = [ops.length]
    for (const op of ops) {
      if (op.kind === 'bucket') {
        keys.push(this.bucketKey(op.ref.namespace, op.ref.key))
        args.push('b', op.ref.capacity, (op.ref.refillPerSecond / 1000).toPrecision(17), op.amount)
      } else if (op.kind === 'quota') {
        keys.push(this.quotaKey(op.ref.namespace, op.ref.key))
        args.push('q', op.ref.limit, op.amount, QUOTA_TTL_SECONDS)
      } else {
        keys.push(this.slotKey(op.ref.namespace, op.ref.key))
        args.push('s', op.ref.limit, Math.ceil(op.ref.leaseMs), op.id)
      }
    }
    const reply = (await this.conn.runMany(RESERVE_SCRIPT, keys, args)) as (string | number)[]
    const allowed = Number(reply[0]) === 1
    const now = Number(reply[1])
    const results: ReserveResult['results'] = ops.map((op, i) => {
      const ok = Number(reply[2 + i * 3]) === 1
      const a = reply[3 + i * 3]
      const b = Number(reply[4 + i * 3])
      if (op.kind === 'bucket') return { allowed: ok, bucket: describeBucket(op.ref, Number(a), ok, ok ? 1 : op.amount) }
      if (op.kind === 'quota') return { allowed: ok, quota: { allowed: ok, used: Number(a), period: b, msUntilReset: Math.max(0, periodEnd(b) - now) } }
      return { allowed: ok, slot: { allowed: ok, held: Number(a) } }
    })
    return { allowed, results }
  }

  ping(): Promise<boolean> {
    return this.conn.ping()
  }

  stats(): StoreStats {
    return { errors: this.conn.errors }
  }

  shutdown(): Promise<void> {
    return this.conn.shutdown()
  }
}

/** A store that keeps buckets and quotas in Redis, shared by every instance that uses the same prefix. */
export function redisStore(options: RedisStoreOptions): RedisStore {
  return new RedisStore(options)
}
