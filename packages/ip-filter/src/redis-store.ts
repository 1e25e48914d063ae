import { GatehouseConfigError, GatehouseError, isLogger, noopLogger, type Logger } from '@gatehouse/core'
import type { Redis } from 'ioredis'
import type { DenylistEntry, DenylistStore } from './store'

export interface RedisDenylistStoreOptions {
  /**
   * An ioredis client. The store uses it for commands and opens one more connection of its own
   * (`client.duplicate()`) for change notifications; `shutdown()` closes only that one.
   */
  client: Redis
  /** Prefix of every key and channel the store uses. @default 'gatehouse:ipf:' */
  prefix?: string | undefined
  /** A command that takes longer than this fails as "store unreachable". @default 1000 */
  timeoutMs?: number | undefined
  /**
   * Reload interval, a safety net behind pub/sub notifications (which carry changes within
   * milliseconds). 0 turns it off. @default 5000
   */
  pollIntervalMs?: number | undefined
  /** @default a no-op logger */
  logger?: Logger | undefined
}

interface StoredValue {
  reason: string
  addedAt: number
  expiresAt: number | null
}

// Drops index members whose entry key has expired, unless the entry came back meanwhile.
const CLEANUP_SCRIPT = `
local removed = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    removed = removed + redis.call('SREM', KEYS[1], ARGV[i - 1])
  end
end
return removed`

const PKG = '@gatehouse/ip-filter'

function unavailable(what: string, cause?: unknown): GatehouseError {
  return new GatehouseError(
    'GH_IPF_STORE_UNAVAILABLE',
    `${PKG}: the Redis denylist store is unreachable (${what})`,
    503,
    cause === undefined ? undefined : { cause },
  )
}

/**
 * The runtime denylist in Redis, shared by every gateway instance that uses the same prefix.
 * Each entry is its own key (with a real Redis TTL when it expires) listed in one set; a change is
 * published on a channel so every instance reloads within milliseconds, and each instance also
 * polls as a safety net.
 *
 * Keys: `<prefix>denylist:index` (set of addresses), `<prefix>denylist:entry:<address>` (JSON),
 * channel `<prefix>denylist:changed`.
 */
export class RedisDenylistStore implements DenylistStore {
  private readonly client: Redis
  private readonly prefix: string
  private readonly timeoutMs: number
  private readonly pollIntervalMs: number
  private readonly logger: Logger
  private readonly listeners = new Set<() => void>()
  private subscriber: Redis | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private closed = false

  constructor(options: RedisDenylistStoreOptions) {
    const o = (options ?? {}) as Partial<RedisDenylistStoreOptions>
    const client = o.client as Partial<Redis> | undefined
    if (!client || typeof client.smembers !== 'function' || typeof client.duplicate !== 'function') {
      throw new GatehouseConfigError('GH_IPF_STORE_INVALID', `${PKG}: RedisDenylistStore needs { client: an ioredis client }`)
    }
    const num = (name: 'timeoutMs' | 'pollIntervalMs', v: unknown, min: number, def: number): number => {
      if (v === undefined) return def
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 2_147_483_647) {
        throw new GatehouseConfigError('GH_IPF_STORE_INVALID', `${PKG}: RedisDenylistStore ${name} must be an integer >= ${min} (got ${JSON.stringify(v)})`)
      }
      return v
    }
    if (o.prefix !== undefined && (typeof o.prefix !== 'string' || o.prefix.length > 200)) {
      throw new GatehouseConfigError('GH_IPF_STORE_INVALID', `${PKG}: RedisDenylistStore prefix must be a string (got ${JSON.stringify(o.prefix)})`)
    }
    if (o.logger !== undefined && !isLogger(o.logger)) {
      throw new GatehouseConfigError('GH_IPF_STORE_INVALID', `${PKG}: RedisDenylistStore logger must have error, warn, info and debug methods`)
    }
    this.client = o.client as Redis
    this.prefix = o.prefix ?? 'gatehouse:ipf:'
    this.timeoutMs = num('timeoutMs', o.timeoutMs, 1, 1000)
    this.pollIntervalMs = num('pollIntervalMs', o.pollIntervalMs, 0, 5000)
    this.logger = o.logger ?? noopLogger
  }

  private get indexKey(): string {
    return `${this.prefix}denylist:index`
  }
  private entryKey(ip: string): string {
    return `${this.prefix}denylist:entry:${ip}`
  }
  /** The pub/sub channel that carries change notifications. */
  get channel(): string {
    return `${this.prefix}denylist:changed`
  }

  isAvailable(): boolean {
    return !this.closed && this.client.status === 'ready'
  }

  async list(): Promise<DenylistEntry[]> {
    const ips = await this.run('list', () => this.client.smembers(this.indexKey))
    if (ips.length === 0) return []
    const keys = ips.map((ip) => this.entryKey(ip))
    const values = await this.run('list', () => this.client.mget(...keys))
    const now = Date.now()
    const out: DenylistEntry[] = []
    const gone: string[] = []
    values.forEach((raw, i) => {
      const ip = ips[i]!
      if (raw === null) {
        gone.push(ip)
        return
      }
      const v = parseValue(raw)
      if (!v) {
        this.logger.warn(`${PKG}: ignoring a malformed denylist entry in Redis`, { key: this.entryKey(ip) })
        return
      }
      if (v.expiresAt !== null && v.expiresAt <= now) return
      out.push({ ip, reason: v.reason, addedAt: new Date(v.addedAt), expiresAt: v.expiresAt === null ? null : new Date(v.expiresAt) })
    })
    if (gone.length > 0) {
      this.client
        .eval(CLEANUP_SCRIPT, gone.length + 1, this.indexKey, ...gone.map((ip) => this.entryKey(ip)), ...gone)
        .catch((err: unknown) => this.logger.debug(`${PKG}: denylist index cleanup failed`, { error: String(err) }))
    }
    return out
  }

  async add(entry: DenylistEntry): Promise<void> {
    const value: StoredValue = {
      reason: entry.reason,
      addedAt: entry.addedAt.getTime(),
      expiresAt: entry.expiresAt ? entry.expiresAt.getTime() : null,
    }
    const ttl = value.expiresAt === null ? undefined : value.expiresAt - Date.now()
    if (ttl !== undefined && ttl <= 0) return
    const message = JSON.stringify({ op: 'add', ip: entry.ip })
    await this.run('add', async () => {
      const multi = this.client.multi()
      if (ttl === undefined) multi.set(this.entryKey(entry.ip), JSON.stringify(value))
      else multi.set(this.entryKey(entry.ip), JSON.stringify(value), 'PX', Math.max(1, Math.ceil(ttl)))
      const res = await multi.sadd(this.indexKey, entry.ip).publish(this.channel, message).exec()
      throwExecError(res)
    })
  }

  async remove(ip: string): Promise<boolean> {
    const message = JSON.stringify({ op: 'remove', ip })
    return this.run('remove', async () => {
      const res = await this.client
        .multi()
        .del(this.entryKey(ip))
        .srem(this.indexKey, ip)
        .publish(this.channel, message)
        .exec()
      throwExecError(res)
      return Number(res?.[0]?.[1] ?? 0) > 0 || Number(res?.[1]?.[1] ?? 0) > 0
    })
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener)
    this.startWatching()
    return () => {
      this.listeners.delete(listener)
    }
  }

  async shutdown(): Promise<void> {
    this.closed = true
    this.listeners.clear()
    if (this.pollTimer) clearInterval(this.pollTimer)
    this.pollTimer = undefined
    const sub = this.subscriber
    this.subscriber = undefined
    if (sub) {
      sub.removeAllListeners('message')
      sub.removeAllListeners('ready')
      // Only a live connection emits 'end' after disconnect(); one that is between retries just stops.
      const live = sub.status === 'ready' || sub.status === 'connect' || sub.status === 'connecting'
      sub.disconnect()
      if (live && sub.status !== 'end') {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 1000)
          timer.unref()
          sub.once('end', () => {
            clearTimeout(timer)
            resolve()
          })
        })
      }
    }
  }

  private startWatching(): void {
    if (this.subscriber || this.closed) return
    // The subscription must survive the connection not being ready yet (and reconnects), even when
    // the shared client fails fast with enableOfflineQueue: false: queue on this connection only.
    const sub = this.client.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null })
    this.subscriber = sub
    sub.on('message', (channel: string) => {
      if (channel === this.channel) this.notify()
    })
    // After a (re)connect, notifications sent meanwhile were lost: reload.
    sub.on('ready', () => this.notify())
    sub.on('error', (err: unknown) => {
      this.logger.debug(`${PKG}: denylist subscriber connection error`, { error: String(err) })
    })
    sub.subscribe(this.channel).catch((err: unknown) => {
      this.logger.warn(`${PKG}: could not subscribe to denylist changes`, { error: String(err) })
    })
    if (this.pollIntervalMs > 0) {
      this.pollTimer = setInterval(() => this.notify(), this.pollIntervalMs)
      this.pollTimer.unref()
    }
  }

  private notify(): void {
    for (const l of [...this.listeners]) {
      try {
        l()
      } catch {
        // a listener's failure is its own
      }
    }
  }

  /** Run a command once the client is ready, bounded by timeoutMs. */
  private async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw unavailable(`${what}: the store was shut down`)
    const deadline = Date.now() + this.timeoutMs
    await this.whenReady(what)
    const left = Math.max(1, deadline - Date.now())
    let timer: NodeJS.Timeout | undefined
    try {
      return await Promise.race([
        fn(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(unavailable(`${what} timed out after ${this.timeoutMs} ms`)), left)
          timer.unref()
        }),
      ])
    } catch (err) {
      if (err instanceof GatehouseError && err.code === 'GH_IPF_STORE_UNAVAILABLE') throw err
      throw unavailable(`${what} failed`, err)
    } finally {
      if (timer) clearTimeout(timer)
    }
  }

  private whenReady(what: string): Promise<void> {
    const status = this.client.status
    if (status === 'ready') return Promise.resolve()
    if (status === 'end' || status === 'close') return Promise.reject(unavailable(`${what}: connection ${status}`))
    return new Promise<void>((resolve, reject) => {
      const done = (err?: GatehouseError): void => {
        clearTimeout(timer)
        this.client.off('ready', onReady)
        this.client.off('end', onEnd)
        if (err) reject(err)
        else resolve()
      }
      const onReady = (): void => done()
      const onEnd = (): void => done(unavailable(`${what}: connection ended`))
      const timer = setTimeout(() => done(unavailable(`${what}: not connected within ${this.timeoutMs} ms (${this.client.status})`)), this.timeoutMs)
      timer.unref()
      this.client.on('ready', onReady)
      this.client.on('end', onEnd)
    })
  }
}

function parseValue(raw: string): StoredValue | undefined {
  try {
    const v = JSON.parse(raw) as Partial<StoredValue>
    if (typeof v.addedAt !== 'number' || (v.expiresAt !== null && typeof v.expiresAt !== 'number')) return undefined
    return { reason: typeof v.reason === 'string' ? v.reason : '', addedAt: v.addedAt, expiresAt: v.expiresAt }
  } catch {
    return undefined
  }
}

function throwExecError(res: [error: Error | null, result: unknown][] | null): void {
  if (!res) throw new Error('transaction aborted')
  for (const [err] of res) if (err) throw err
}
