import { createHmac, timingSafeEqual } from 'node:crypto'
import {
  GatehouseConfigError,
  ReplicatedHash,
  isLogger,
  noopLogger,
  type Logger,
  type ReplicatedHashClient,
} from '@gatehouse/core'
import { hashClientKey } from './keys'
import { checkStoredRecord, type CreateKeyInput } from './scope'

/** What the per-record MAC key is derived from the salt with (every replica holds the salt). */
const MAC_KEY_LABEL = 'gatehouse shared client-key integrity'
import { KeyIndex, type ClientKeyRecord, type CreatedKey, type ManagedKeyStore, type Rotated } from './store'

export interface RedisKeyStoreOptions {
  /** An ioredis client (or one with the same `eval` and `duplicate`). */
  client: ReplicatedHashClient
  salt: string | Buffer
  /** Prefix of the Redis keys. @default 'gatehouse:' */
  prefix?: string
  /**
   * How long lookups are served from the last copy while Redis cannot be reached; past it no key
   * authenticates until Redis answers again (fail closed). @default 900000 (15 minutes)
   */
  maxStaleMs?: number
  /** How often each replica checks the shared version behind the change notifications. @default 1000 */
  resyncMs?: number
  logger?: Logger
}

/**
 * Client keys shared by every gateway replica through Redis: one hash (`<prefix>client-keys`,
 * field = the key's salted hash, value = its record as JSON; never a key itself), copied into each
 * replica and served from that copy, so a lookup never waits on Redis. A key created or revoked on
 * one replica is in every replica's copy within milliseconds (a notification), and within
 * `resyncMs` should the notification be lost. Each record carries an HMAC under a key derived from
 * the salt, which Redis never holds: an entry written or edited in Redis by anyone but a gateway
 * (a scope widened, a key added) is refused and logged. While Redis is unreachable, lookups use the last copy
 * for up to `maxStaleMs`, and create and revoke fail with GH_CORE_SHARED_STATE_UNAVAILABLE (503),
 * never applied to one replica only.
 */
export class RedisKeyStore extends KeyIndex implements ManagedKeyStore {
  private readonly shared: ReplicatedHash
  private readonly maxStaleMs: number
  private readonly logger: Logger
  private started: Promise<void> | undefined
  private staleLogged = false
  private readonly macKey: Buffer

  constructor(options: RedisKeyStoreOptions) {
    super(options.salt)
    const client = options.client as Partial<ReplicatedHashClient> | undefined
    if (!client || typeof client.eval !== 'function' || typeof client.duplicate !== 'function') {
      throw new GatehouseConfigError('GH_AUTH_STORE_INVALID', '@gatehouse/client-auth: RedisKeyStore needs { client: an ioredis client }')
    }
    const maxStaleMs = options.maxStaleMs ?? 900_000
    if (!Number.isSafeInteger(maxStaleMs) || maxStaleMs < 1000) {
      throw new GatehouseConfigError('GH_AUTH_STORE_INVALID', `@gatehouse/client-auth: RedisKeyStore maxStaleMs must be a whole number of ms, at least 1000 (got ${JSON.stringify(maxStaleMs)})`)
    }
    if (options.logger !== undefined && !isLogger(options.logger)) {
      throw new GatehouseConfigError('GH_AUTH_STORE_INVALID', '@gatehouse/client-auth: RedisKeyStore logger must have error, warn, info and debug methods')
    }
    this.maxStaleMs = maxStaleMs
    this.macKey = Buffer.from(hashClientKey(MAC_KEY_LABEL, this.salt), 'hex')
    this.logger = options.logger ?? noopLogger
    this.shared = new ReplicatedHash({
      client: options.client,
      key: `${options.prefix ?? 'gatehouse:'}client-keys`,
      label: '@gatehouse/client-auth: shared key store',
      logger: this.logger,
      ...(options.resyncMs !== undefined ? { resyncMs: options.resyncMs } : {}),
      onChange: (entries) => this.load(entries),
    })
  }

  /** Load the first copy and follow changes; rejects while Redis cannot be read (lookups then find no key). */
  start(): Promise<void> {
    this.started ??= this.shared.start()
    return this.started.catch((err: unknown) => {
      this.started = undefined
      throw err
    })
  }

  /** The shared state's version in this replica's copy (0 before the first load). */
  get version(): number {
    return this.shared.version
  }

  /** Whether the copy was confirmed current within `ms`. */
  freshWithin(ms: number): boolean {
    return this.shared.freshWithin(ms)
  }

  get lastError(): string | undefined {
    if (this.shared.lastSyncAt === 0) return 'the shared key store has not been read yet'
    if (!this.shared.freshWithin(this.maxStaleMs)) return `the shared key store has not been reachable for over ${Math.round(this.maxStaleMs / 1000)} s`
    return undefined
  }

  async create(input: CreateKeyInput): Promise<CreatedKey> {
    const created = this.draw(input)
    await this.shared.update({ [created.record.hash]: this.seal(created.record) })
    return { key: created.key, record: { ...created.record } }
  }

  async revoke(id: string): Promise<ClientKeyRecord> {
    const found = this.find(id)
    if (found.revoked_at) return { ...found }
    const updated = { ...found, revoked_at: new Date().toISOString() }
    await this.shared.update({ [found.hash]: this.seal(updated) })
    return { ...updated }
  }

  async rotate(id: string, graceMs: number): Promise<Rotated> {
    const { created, old } = this.successor(id, graceMs)
    await this.shared.update({ [old.hash]: this.seal(old), [created.record.hash]: this.seal(created.record) })
    return { key: created.key, record: { ...created.record }, previous: { ...old } }
  }

  /** Put records in as they are (a migration from a key file): no key is re-issued. */
  async importRecords(records: readonly ClientKeyRecord[]): Promise<number> {
    for (const r of records) checkStoredRecord(r, 'an imported record')
    if (records.length === 0) return 0
    await this.shared.update(Object.fromEntries(records.map((r) => [r.hash, this.seal(r)])))
    return records.length
  }

  close(): Promise<void> {
    return this.shared.close()
  }

  protected refresh(force: boolean): void {
    // The copy follows Redis by itself; a lookup only checks it is not too old to trust.
    if (force || this.byHash.size === 0 || this.shared.freshWithin(this.maxStaleMs)) {
      this.staleLogged = false
      return
    }
    if (!this.staleLogged) this.logger.error(`@gatehouse/client-auth: ${this.lastError ?? 'the shared key store is stale'}; no key authenticates until Redis answers`)
    this.staleLogged = true
    this.index([])
    // The next sync that succeeds loads every record again (an unchanged version included).
    this.shared.version = -1
  }

  /** A record as stored in Redis: its JSON with an HMAC of that JSON. */
  private seal(r: ClientKeyRecord): string {
    return JSON.stringify({ ...r, mac: this.macOf(r) })
  }

  private macOf(r: ClientKeyRecord): string {
    return createHmac('sha256', this.macKey).update(JSON.stringify(r)).digest('hex')
  }

  private load(entries: ReadonlyMap<string, string>): void {
    const records: ClientKeyRecord[] = []
    for (const [hash, raw] of entries) {
      try {
        const { mac, ...r } = JSON.parse(raw) as ClientKeyRecord & { mac?: unknown }
        const expected = this.macOf(r as ClientKeyRecord)
        if (typeof mac !== 'string' || mac.length !== expected.length || !timingSafeEqual(Buffer.from(mac), Buffer.from(expected))) {
          throw new Error('its integrity check fails: changed outside Gatehouse (or written without the salt)')
        }
        checkStoredRecord(r as ClientKeyRecord, 'the shared key store')
        if (r.hash !== hash) throw new Error('stored under another hash')
        records.push(r as ClientKeyRecord)
      } catch (err) {
        // One bad entry fails closed for that entry alone.
        this.logger.error('@gatehouse/client-auth: ignoring an entry of the shared key store', {
          error: err instanceof Error ? err.message : String(err),
        })
      }
    }
    this.index(records)
  }
}
