import { GatehouseConfigError, type Logger } from '@gatehouse/core'
import type { Redis, RedisOptions } from 'ioredis'
import type { Script } from './redis-scripts'
import { StoreUnavailableError } from './store'

const CONNECTING = new Set(['wait', 'connecting', 'connect'])

/** A late rejection after a timeout is not unhandled. */
const ignore = (): undefined => undefined

/** `call`, or StoreUnavailableError after `ms`; the timer is cleared either way. */
async function bounded<T>(call: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreUnavailableError('Redis did not answer in time')), ms)
    timer.unref()
  })
  call.catch(ignore)
  try {
    return await Promise.race([call, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * The Redis store's connection: waits (bounded) for the first connection, then fails fast while
 * disconnected; bounds every command by `timeoutMs`; turns every failure into
 * StoreUnavailableError and counts it; logs an outage once and its end.
 */
export class RedisConnection {
  readonly client: Redis
  private readonly owned: boolean
  private everReady: boolean
  private failedBeforeReady = false
  private down = false
  private closing = false
  errors = 0

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

  constructor(
    config: { client: Redis | undefined; url: string | undefined },
    private readonly timeoutMs: number,
    private readonly logger: Logger,
  ) {
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

  /** Log a lost connection once per outage (the client retries every second or so). */
  private lost(reason: string): void {
    if (this.down || this.closing) return
    this.down = true
    this.logger.warn(
      '@gatehouse/rate-limit: Redis is unreachable; the limiters apply onStoreError until it returns',
      { error: reason },
    )
  }

  /** Wait for the first connection (bounded); afterwards, fail fast while disconnected. */
  private async ready(): Promise<void> {
    const c = this.client
    if (c.status === 'ready') return
    if (!this.everReady && !this.failedBeforeReady && CONNECTING.has(c.status)) {
      if (c.status === 'wait') c.connect().catch(ignore)
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

  /** A failure, counted and as StoreUnavailableError. */
  private failure(err: unknown): StoreUnavailableError {
    this.errors++
    return err instanceof StoreUnavailableError ? err : new StoreUnavailableError('Redis command failed', { cause: err })
  }

  /** Run one script over one key within the timeout. */
  async run(s: Script, key: string, args: (string | number)[]): Promise<unknown> {
    try {
      await this.ready()
      return await bounded(this.evalScript(s, key, args), this.timeoutMs)
    } catch (err) {
      throw this.failure(err)
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

  /** Run one script over several keys within the timeout (as `run`). */
  async runMany(s: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      await this.ready()
      const call = this.client.evalsha(s.sha, keys.length, ...keys, ...args).catch((err: unknown) => {
        if (err instanceof Error && err.message.startsWith('NOSCRIPT')) return this.client.eval(s.lua, keys.length, ...keys, ...args)
        throw err
      })
      return await bounded(call, this.timeoutMs)
    } catch (err) {
      throw this.failure(err)
    }
  }

  async del(key: string): Promise<void> {
    try {
      await this.ready()
      await bounded(this.client.del(key), this.timeoutMs)
    } catch (err) {
      throw this.failure(err)
    }
  }

  /** Delete the keys that match a SCAN pattern (bounded batches, never KEYS or FLUSHALL). */
  async delMatching(match: string): Promise<void> {
    await this.ready()
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

  async ping(): Promise<boolean> {
    try {
      await this.ready()
      return (await bounded(this.client.ping(), this.timeoutMs)) === 'PONG'
    } catch {
      return false
    }
  }

  async shutdown(): Promise<void> {
    this.closing = true
    this.client.off('ready', this.onReady)
    this.client.off('error', this.onError)
    this.client.off('close', this.onClose)
    if (!this.owned) return
    this.client.on('error', ignore) // errors while closing are of no interest
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
