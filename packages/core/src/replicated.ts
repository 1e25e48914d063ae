import { GatehouseError } from './errors'
import { noopLogger, type Logger } from './logger'

/**
 * The commands a replicated hash needs of a Redis client (an ioredis client fits). Typed here, not
 * imported, so that core depends on no Redis library; the packages that hand one in do.
 */
export interface ReplicatedHashClient {
  eval(script: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>
  /** A second connection, for the change subscription (a subscribed connection runs no commands). */
  duplicate(): ReplicatedHashSubscriber
}

export interface ReplicatedHashSubscriber {
  subscribe(channel: string): Promise<unknown>
  on(event: 'message', listener: (channel: string, message: string) => void): unknown
  on(event: 'ready' | 'error', listener: (...args: unknown[]) => void): unknown
  disconnect(): void
}

export interface ReplicatedHashOptions {
  client: ReplicatedHashClient
  /** The Redis hash; `<key>:version` holds its version and `<key>:changed` is its channel. */
  key: string
  /**
   * Called with every field and value after each sync that saw a new version (the first one
   * included). It must not throw; what it builds replaces the replica's copy.
   */
  onChange: (entries: ReadonlyMap<string, string>, version: number) => void
  /**
   * How often a replica checks the version itself, behind the change notifications (which arrive
   * within milliseconds): a lost notification is healed within this interval. @default 1000
   */
  resyncMs?: number
  logger?: Logger
  /** Names the hash in log lines. */
  label?: string
}

// One step: apply the changes, bump the version, tell every replica. Values of JSON null delete.
// ARGV[3], when given, holds fields and the values they must still have: if one differs, nothing
// is applied and -1 comes back (a compare-and-set over those fields).
const UPDATE_SCRIPT = `
if ARGV[3] then
  for field, value in pairs(cjson.decode(ARGV[3])) do
    if redis.call('HGET', KEYS[1], field) ~= value then return -1 end
  end
end
local changes = cjson.decode(ARGV[2])
for field, value in pairs(changes) do
  if value == cjson.null then redis.call('HDEL', KEYS[1], field) else redis.call('HSET', KEYS[1], field, value) end
end
local version = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[1], tostring(version))
return version`

// The version and the fields read together, so a copy is never newer or older than its version.
const SNAPSHOT_SCRIPT = `return { redis.call('GET', KEYS[2]) or '0', redis.call('HGETALL', KEYS[1]) }`

// Redis lost the hash (restarted without persistence, flushed): put back what this replica held,
// field by field where the field is absent, above the version it had. A no-op once another replica
// with as new a copy has done it.
const HEAL_SCRIPT = `
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
local mine = tonumber(ARGV[2])
if current >= mine then return current end
for field, value in pairs(cjson.decode(ARGV[3])) do redis.call('HSETNX', KEYS[1], field, value) end
redis.call('SET', KEYS[2], mine + 1)
redis.call('PUBLISH', ARGV[1], tostring(mine + 1))
return mine + 1`

// The version alone: what the periodic check reads.
const VERSION_SCRIPT = `return redis.call('GET', KEYS[1]) or '0'`

/**
 * A Redis hash every replica keeps a copy of: one source of truth, read locally. A change is one
 * atomic step (fields, version, notification); every replica reloads on the notification and
 * checks the version every `resyncMs` besides, so a notification lost to a reconnect heals. While
 * Redis is unreachable the copy stays as it last was (`lastSyncAt` says since when) and changes
 * fail with GH_CORE_SHARED_STATE_UNAVAILABLE (503): nothing is applied to one replica only.
 *
 * Written here rather than taken from a library: the Redis clients offer pub/sub and scripts, not a
 * versioned replicated map, and the few dozen lines below are that.
 */
export class ReplicatedHash {
  private readonly client: ReplicatedHashClient
  private readonly key: string
  private readonly versionKey: string
  private readonly channel: string
  private readonly onChange: ReplicatedHashOptions['onChange']
  private readonly resyncMs: number
  private readonly logger: Logger
  private readonly label: string
  private subscriber: ReplicatedHashSubscriber | undefined
  private timer: NodeJS.Timeout | undefined
  private syncing: Promise<void> | undefined
  private failing = false
  private closed = false
  /** The last copy read, for healing a Redis that lost it. */
  private entries: ReadonlyMap<string, string> = new Map()
  /** The version of the local copy (0 before the first sync). */
  version = 0
  /** When the copy was last confirmed current (ms since the epoch; 0 before the first sync). */
  lastSyncAt = 0

  constructor(options: ReplicatedHashOptions) {
    this.client = options.client
    this.key = options.key
    this.versionKey = `${options.key}:version`
    this.channel = `${options.key}:changed`
    this.onChange = options.onChange
    this.resyncMs = options.resyncMs ?? 1000
    this.logger = options.logger ?? noopLogger
    this.label = options.label ?? options.key
  }

  /** Load the first copy and start following changes. Rejects when Redis cannot be read (the watch keeps trying). */
  async start(): Promise<void> {
    if (!this.subscriber) {
      const sub = this.client.duplicate()
      this.subscriber = sub
      sub.on('message', (channel, message) => {
        if (channel === this.channel && Number(message) > this.version) void this.sync()
      })
      // Subscribed on every (re)connection, which may also have missed notifications: check at once.
      const subscribe = (): void => {
        sub.subscribe(this.channel).catch(() => undefined)
      }
      sub.on('ready', () => {
        subscribe()
        void this.sync()
      })
      sub.on('error', () => undefined)
      subscribe()
      this.timer = setInterval(() => void this.check(), this.resyncMs)
      this.timer.unref()
    }
    await this.sync(true)
  }

  /**
   * Read the current copy once (onChange is called with it) without following changes: what a
   * one-shot command needs, with no subscription to tear down. Rejects (503) when Redis cannot be read.
   */
  readOnce(): Promise<void> {
    return this.sync(true)
  }

  /** Whether the copy was confirmed current within `maxAgeMs`. */
  freshWithin(maxAgeMs: number): boolean {
    return this.lastSyncAt > 0 && Date.now() - this.lastSyncAt <= maxAgeMs
  }

  /**
   * Apply changes (a value of null deletes the field) in one atomic step on every replica; resolves
   * once this replica's copy holds them. With `expected` (fields and the values they must still
   * hold), nothing is applied when one of them changed meanwhile, and it resolves false.
   * GH_CORE_SHARED_STATE_UNAVAILABLE (503) when Redis cannot take them.
   */
  async update(changes: Record<string, string | null>, expected?: Record<string, string>): Promise<boolean> {
    let version: number
    try {
      const args = [this.key, this.versionKey, this.channel, JSON.stringify(changes), ...(expected ? [JSON.stringify(expected)] : [])]
      version = Number(await this.client.eval(UPDATE_SCRIPT, 2, ...args))
    } catch (err) {
      throw this.unavailable(err)
    }
    if (version === -1) return false
    // A snapshot already in flight may have been read before this change: joining it is not enough.
    // Sync until this copy holds the change's version (a few rounds at most; each reads the latest).
    for (let round = 0; version > this.version && round < 5; round++) await this.sync(true)
    return true
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    const sub = this.subscriber
    this.subscriber = undefined
    sub?.disconnect()
    await this.syncing?.catch(() => undefined)
  }

  private async check(): Promise<void> {
    if (this.closed || this.syncing) return
    try {
      const v = Number(await this.client.eval(VERSION_SCRIPT, 1, this.versionKey))
      if (v !== this.version) await this.sync()
      else this.confirmed()
    } catch (err) {
      this.failed(err)
    }
  }

  /** One snapshot at a time; `strict` rejects when it fails (start and update), otherwise it is logged. */
  private sync(strict = false): Promise<void> {
    if (this.closed) return Promise.resolve()
    const run = (this.syncing ??= this.snapshot().finally(() => (this.syncing = undefined)))
    return strict ? run.catch((err: unknown) => Promise.reject(this.unavailable(err))) : run.catch(() => undefined)
  }

  private async snapshot(): Promise<void> {
    let raw: unknown
    try {
      raw = await this.client.eval(SNAPSHOT_SCRIPT, 2, this.key, this.versionKey)
    } catch (err) {
      this.failed(err)
      throw err
    }
    const [v, flat] = raw as [string, string[]]
    const version = Number(v)
    if (version < this.version && this.entries.size > 0) {
      // The shared version went back: Redis lost its data. What this replica held goes back in.
      this.logger.warn(`${this.label}: Redis lost the shared state (version ${version}, this replica had ${this.version}); restoring this replica's copy`)
      await this.client.eval(HEAL_SCRIPT, 2, this.key, this.versionKey, this.channel, this.version, JSON.stringify(Object.fromEntries(this.entries)))
      this.version = -1
      return this.snapshot()
    }
    if (version !== this.version || this.lastSyncAt === 0) {
      const entries = new Map<string, string>()
      for (let i = 0; i + 1 < flat.length; i += 2) entries.set(flat[i]!, flat[i + 1]!)
      this.onChange(entries, version)
      this.entries = entries
      this.version = version
    }
    this.confirmed()
  }

  private confirmed(): void {
    this.lastSyncAt = Date.now()
    if (this.failing) this.logger.info(`${this.label}: the shared copy is current again`, { version: this.version })
    this.failing = false
  }

  private failed(err: unknown): void {
    if (!this.failing)
      this.logger.error(`${this.label}: Redis unreachable; serving the last copy`, {
        version: this.version,
        error: err instanceof Error ? err.message : String(err),
      })
    this.failing = true
  }

  private unavailable(err: unknown): GatehouseError {
    return new GatehouseError(
      'GH_CORE_SHARED_STATE_UNAVAILABLE',
      `${this.label}: the shared store (Redis) is unreachable; nothing was changed`,
      503,
      { cause: err },
    )
  }
}
