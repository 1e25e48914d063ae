import { GatehouseConfigError, noopLogger, type Logger } from '@gatehouse/core'
import type { Redis, RedisOptions } from 'ioredis'
import { resolveRedisStoreOptions } from './store-options'
import { BUCKET_SCRIPT, QUOTA_SCRIPT, RESERVE_SCRIPT, SLOT_SCRIPT, type Script } from './redis-scripts'
import {
  describeBucket,
  StoreUnavailableError,
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
const CONNECTING = new Set(['wait', 'connecting', 'connect'])

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
  private readonly owned: boolean
  private readonly timeoutMs: number
  private readonly logger: Logger
  private everReady: boolean
  private failedBeforeReady = false
  private errors = 0
  private down = false
  private closing = false
  private readonly onReady = (): void => {
    this.everReady = true
    if (this.down) this.logger.info('@gatehouse/rate-limit: Redis is reachable again; limiting resumed')
    this.down = false
  }
  private readonly onError = (err: Error): void => {
    if (!this.everReady) this.failedBeforeReady = true
    this.lost(err.message)
  }
  private readonly onClose = (): void => {
    if (!this.everReady) this.failedBeforeReady = true
    this.lost('connection closed')
  }

  /** Log a lost connection once per outage (the client retries every second or so). */
  private lost(reason: string): void {
    if (this.down || this.closing) return
    this.down = true
    this.logger.warn(
      '@gatehouse/rate-limit: Redis is unreachable; the limiters apply onStoreError until it returns',
      { error: reason },
    )
  }

  constructor(options: RedisStoreOptions) {
    const config = resolveRedisStoreOptions(options)
    this.prefix = config.prefix
    this.timeoutMs = config.commandTimeoutMs
    this.logger = config.logger ?? noopLogger
    if (config.client) {
      this.client = config.client
      this.owned = false
    } else {
      this.client = createClient(config.url!, this.timeoutMs)
      this.owned = true
    }
    this.everReady = this.client.status === 'ready'
    this.client.on('ready', this.onReady)
    this.client.on('error', this.onError)
    this.client.on('close', this.onClose)
  }

  private bucketKey(namespace: string, key: string): string {
    return `${this.prefix}b:${namespace}:${key}`
  }

  private quotaKey(namespace: string, key: string): string {
    return `${this.prefix}q:${namespace}:${key}`
  }

  /** Wait for the first connection (bounded); afterwards, fail fast while disconnected. */
  private async ready(): Promise<void> {
    const c = this.client
    if (c.status === 'ready') return
    if (!this.everReady && !this.failedBeforeReady && CONNECTING.has(c.status)) {
      if (c.status === 'wait') c.connect().catch(() => undefined)
      await new Promise<void>((resolve, reject) => {
        const done = (err?: Error): void => {
          clearTimeout(timer)
          c.off('ready', onReady)
          c.off('error', onFail)
          c.off('end', onFail)
          if (err) reject(err)
          else resolve()
        }
        const onReady = (): void => done()
        const onFail = (): void => done(new StoreUnavailableError('Redis is not reachable'))
        const timer = setTimeout(
          () => done(new StoreUnavailableError('Redis did not connect in time')),
          this.timeoutMs,
        )
        timer.unref()
        c.once('ready', onReady)
        c.once('error', onFail)
        c.once('end', onFail)
      })
      return
    }
    throw new StoreUnavailableError(`Redis connection is ${c.status}`)
  }

  /** Run one script within the timeout; every failure becomes StoreUnavailableError and is counted. */
  private async run(s: Script, key: string, args: (string | number)[]): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined
    try {
      await this.ready()
      const call = this.evalScript(s, key, args)
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new StoreUnavailableError('Redis did not answer in time')),
          this.timeoutMs,
        )
        timer.unref()
      })
      call.catch(() => undefined) // a late rejection after the timeout is not unhandled
      return await Promise.race([call, timeout])
    } catch (err) {
      this.errors++
      if (err instanceof StoreUnavailableError) throw err
      throw new StoreUnavailableError('Redis command failed', { cause: err })
    } finally {
      if (timer) clearTimeout(timer)
    }
  }

  private async evalScript(s: Script, key: string, args: (string | number)[]): Promise<unknown> {
    try {
      return await this.client.evalsha(s.sha, 1, key, ...args)
    } catch (err) {
      // After a Redis restart its script cache is empty: send the script itself once.
      if (err instanceof Error && err.message.startsWith('NOSCRIPT'))
        return this.client.eval(s.lua, 1, key, ...args)
      throw err
    }
  }

  private async bucket(
    bucket: BucketRef,
    op: 'take' | 'adjust' | 'peek',
    amount: number,
  ): Promise<BucketState> {
    const reply = (await this.run(BUCKET_SCRIPT, this.bucketKey(bucket.namespace, bucket.key), [
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

  private async del(key: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    try {
      await this.ready()
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new StoreUnavailableError('Redis did not answer in time')),
          this.timeoutMs,
        )
        timer.unref()
      })
      await Promise.race([this.client.del(key), timeout])
    } catch (err) {
      this.errors++
      throw err instanceof StoreUnavailableError
        ? err
        : new StoreUnavailableError('Redis command failed', { cause: err })
    } finally {
      if (timer) clearTimeout(timer)
    }
  }

  resetBucket(namespace: string, key: string): Promise<void> {
    return this.del(this.bucketKey(namespace, key))
  }

  /** Delete a namespace's buckets with SCAN (bounded batches, never KEYS or FLUSHALL). */
  async resetNamespace(namespace: string): Promise<void> {
    await this.ready()
    const match = `${`${this.prefix}b:${namespace}:`.replace(/[*?[\]\\]/g, '\\$&')}*`
    let cursor = '0'
    try {
      do {
        const [next, keys] = await this.client.scan(cursor, 'MATCH', match, 'COUNT', 500)
        cursor = next
        if (keys.length > 0) await this.client.del(...keys)
      } while (cursor !== '0')
    } catch (err) {
      this.errors++
      throw new StoreUnavailableError('Redis command failed', { cause: err })
    }
  }

  private async quota(
    quota: QuotaRef,
    op: 'reserve' | 'settle' | 'get',
    amount: number,
    settlePeriod = 0,
  ): Promise<QuotaState> {
    const reply = (await this.run(QUOTA_SCRIPT, this.quotaKey(quota.namespace, quota.key), [
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
    return this.del(this.quotaKey(namespace, key))
  }

  private slotKey(namespace: string, key: string): string {
    return `${this.prefix}s:${namespace}:${key}`
  }

  async slotAcquire(slots: SlotRef, id: string): Promise<SlotState> {
    const reply = (await this.run(SLOT_SCRIPT, this.slotKey(slots.namespace, slots.key), ['acquire', slots.limit, Math.ceil(slots.leaseMs), id])) as [number, number]
    return { allowed: Number(reply[0]) === 1, held: Number(reply[1]) }
  }

  async slotRelease(slots: SlotRef, id: string): Promise<void> {
    await this.run(SLOT_SCRIPT, this.slotKey(slots.namespace, slots.key), ['release', slots.limit, 0, id])
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
    const reply = (await this.runMany(RESERVE_SCRIPT, keys, args)) as (string | number)[]
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

  /** Run one script over several keys within the timeout (as `run`). */
  private async runMany(s: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined
    try {
      await this.ready()
      const call = this.client.evalsha(s.sha, keys.length, ...keys, ...args).catch((err: unknown) => {
        if (err instanceof Error && err.message.startsWith('NOSCRIPT')) return this.client.eval(s.lua, keys.length, ...keys, ...args)
        throw err
      })
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new StoreUnavailableError('Redis did not answer in time')), this.timeoutMs)
        timer.unref()
      })
      call.catch(() => undefined)
      return await Promise.race([call, timeout])
    } catch (err) {
      this.errors++
      if (err instanceof StoreUnavailableError) throw err
      throw new StoreUnavailableError('Redis command failed', { cause: err })
    } finally {
      if (timer) clearTimeout(timer)
    }
  }

  async ping(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    try {
      await this.ready()
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), this.timeoutMs)
        timer.unref()
      })
      return (await Promise.race([this.client.ping(), timeout])) === 'PONG'
    } catch {
      return false
    } finally {
      if (timer) clearTimeout(timer)
    }
  }

  stats(): StoreStats {
    return { errors: this.errors }
  }

  async shutdown(): Promise<void> {
    this.closing = true
    this.client.off('ready', this.onReady)
    this.client.off('error', this.onError)
    this.client.off('close', this.onClose)
    if (!this.owned) return
    this.client.on('error', () => undefined) // errors while closing are of no interest
    try {
      await this.client.quit()
    } catch {
      this.client.disconnect()
    }
  }
}

function createClient(url: string, timeoutMs: number): Redis {
  let RedisCtor: new (url: string, options: RedisOptions) => Redis
  try {
    // ioredis is an optional peer dependency: load it only when a Redis store is asked for.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    RedisCtor = (require('ioredis') as { default: typeof RedisCtor }).default
  } catch {
    throw new GatehouseConfigError(
      'GH_RL_REDIS_CLIENT_MISSING',
      '@gatehouse/rate-limit: redisStore({ url }) needs the ioredis package; run npm install ioredis',
    )
  }
  return new RedisCtor(url, {
    enableOfflineQueue: false, // fail at once while disconnected; never replay stale decisions later
    maxRetriesPerRequest: 1,
    connectTimeout: Math.max(timeoutMs, 1000),
    retryStrategy: (times: number) => Math.min(100 * times, 1000),
    enableAutoPipelining: true,
  })
}

/** A store that keeps buckets and quotas in Redis, shared by every instance that uses the same prefix. */
export function redisStore(options: RedisStoreOptions): RedisStore {
  return new RedisStore(options)
}
