import { createHmac, timingSafeEqual } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, statSync, chmodSync, watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import {
  ENDPOINT_IDS,
  GatehouseConfigError,
  GatehouseError,
  KEY_LIMIT_NAMES,
  insecureFileReason,
  isCidr,
  isProviderName,
  PROVIDER_NAMES,
  suggest,
  writeFileAtomicSync,
  type KeyLimitScope,
  type Logger,
  noopLogger,
} from '@gatehouse/core'
import { ClientAuthErrorCodes } from './errors'
import { bytesEqualHex, generateClientKey, hashClientKey, keyIdFromHash, parseSalt } from './keys'

/** One client key as stored: never the key itself, only its salted hash. */
export interface ClientKeyRecord {
  /** Public id, `key_` + 8 hex of the hash. */
  id: string
  name: string
  /** HMAC-SHA256(salt, key), hex. */
  hash: string
  created_at: string
  revoked_at?: string
  expires_at?: string
  /** Providers this key may call; all when absent (an empty list allows none). */
  providers?: string[]
  /**
   * Endpoint ids (provider registry) this key may call, replacing the providers' allowed sets for
   * it; the providers' sets when absent (an empty list allows none).
   */
  endpoints?: string[]
  /** Models (names, or patterns with `*`) this key may use; any when absent. */
  models?: string[]
  /** The key's own limits, overall and per provider, on top of the gateway's. */
  limits?: KeyLimitScope
  /** Networks (CIDRs or addresses) the key is valid from; from anywhere when absent. */
  networks?: string[]
  /** Rotation: the key this one replaced, and the key that replaces this one (valid until expires_at). */
  rotated_from?: string
  rotated_to?: string
}

/** What the middleware needs from a key store. */
export interface ClientKeyStore {
  /** The record for a presented key, or undefined. Must be fast: it runs on every request. */
  verify(key: string): ClientKeyRecord | undefined
  /** Hash a key under this store's salt (used for honeytokens). */
  hash(key: string): string
  /** The record for a key already hashed with `hash()` (saves hashing twice per request). */
  verifyHash?(hash: string): ClientKeyRecord | undefined
}

export interface CreateKeyInput {
  name: string
  /** Non-empty when given: an empty scope is refused, never read as "everything". */
  providers?: string[]
  /** Endpoint ids (provider registry); non-empty when given, each of one of `providers`. */
  endpoints?: string[]
  /** Models or `*` patterns; non-empty when given. */
  models?: string[]
  /** Positive whole numbers; provider entries only for providers the key may call. */
  limits?: KeyLimitScope
  /** CIDRs or addresses the key is valid from; non-empty when given. */
  networks?: string[]
  expiresAt?: Date
}

/**
 * Check a key's scope before it is stored. Throws GH_AUTH_INVALID_SCOPE (400) naming the field
 * and the value at fault (scopes hold no secret).
 */
export function validateKeyScope(input: { providers?: unknown; endpoints?: unknown; models?: unknown; limits?: unknown; networks?: unknown }): void {
  const bad = (message: string): never => {
    throw new GatehouseError(ClientAuthErrorCodes.GH_AUTH_INVALID_SCOPE, `@gatehouse/client-auth: ${message}`, 400)
  }
  const list = (field: string, value: unknown): string[] | undefined => {
    if (value === undefined) return undefined
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) bad(`${field} must be a list of names`)
    if ((value as string[]).length === 0) bad(`${field} must not be empty: an empty scope would be read as everything or nothing; leave it out for the defaults`)
    return value as string[]
  }
  const providers = list('providers', input.providers)
  for (const p of providers ?? []) {
    if (!isProviderName(p)) {
      const hint = suggest(p, PROVIDER_NAMES)
      bad(`providers: unknown provider ${JSON.stringify(p)}${hint ? ` (did you mean ${JSON.stringify(hint)}?)` : ''} (${PROVIDER_NAMES.join(', ')})`)
    }
  }
  for (const id of list('endpoints', input.endpoints) ?? []) {
    if (!ENDPOINT_IDS.includes(id)) {
      const hint = suggest(id, ENDPOINT_IDS)
      bad(`endpoints: unknown endpoint ${JSON.stringify(id)}${hint ? ` (did you mean ${JSON.stringify(hint)}?)` : ''}`)
    }
    const provider = id.slice(0, id.indexOf('.'))
    if (providers && !providers.includes(provider)) bad(`endpoints: ${JSON.stringify(id)} is an endpoint of ${provider}, which providers does not include`)
  }
  for (const net of list('networks', input.networks) ?? []) {
    if (!isCidr(net)) bad(`networks: ${JSON.stringify(net.slice(0, 60))} is not a CIDR or an address (10.0.0.0/8, 2001:db8::/32, 203.0.113.7)`)
  }
  for (const model of list('models', input.models) ?? []) {
    if (!MODEL_PATTERN.test(model)) bad(`models: ${JSON.stringify(model.slice(0, 80))} is not a model name or pattern (letters, digits, . _ - : / @ and *, up to 200)`)
  }
  if (input.limits === undefined) return
  const whole = (field: string, value: unknown): void => {
    if (!Number.isSafeInteger(value) || (value as number) < 1) bad(`${field} must be a whole number of at least 1 (got ${JSON.stringify(value)})`)
  }
  const limitsOf = (field: string, value: unknown, nested: boolean): void => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) bad(`${field} must be an object of limits`)
    for (const [name, v] of Object.entries(value as Record<string, unknown>)) {
      if (nested && name === 'providers') {
        if (v === null || typeof v !== 'object' || Array.isArray(v)) bad(`${field}.providers must map provider names to limits`)
        for (const [p, pl] of Object.entries(v as Record<string, unknown>)) {
          if (!isProviderName(p)) bad(`${field}.providers: unknown provider ${JSON.stringify(p)} (${PROVIDER_NAMES.join(', ')})`)
          if (providers && !providers.includes(p)) bad(`${field}.providers.${p}: the key may not call ${p} (providers)`)
          limitsOf(`${field}.providers.${p}`, pl, false)
        }
        continue
      }
      if (!(KEY_LIMIT_NAMES as readonly string[]).includes(name)) {
        const hint = suggest(name, KEY_LIMIT_NAMES)
        bad(`${field}: unknown limit ${JSON.stringify(name)}${hint ? ` (did you mean ${JSON.stringify(hint)}?)` : ''} (${KEY_LIMIT_NAMES.join(', ')})`)
      }
      whole(`${field}.${name}`, v)
    }
  }
  limitsOf('limits', input.limits, true)
}

/** A model name as providers spell them (`gpt-4o-mini`, `models/gemini-2.0-flash`, `claude-sonnet-4@20250514`), `*` for any run. */
const MODEL_PATTERN = /^[A-Za-z0-9._:/@*-]{1,200}$/

/** A rotation: the successor (its key shown once) and the old record with its end of grace. */
export interface Rotated extends CreatedKey {
  previous: ClientKeyRecord
}

export interface CreatedKey {
  /** The plaintext key: shown once, never stored. */
  key: string
  record: ClientKeyRecord
}

interface KeyFile {
  version: 1
  /**
   * HMAC-SHA256(salt, SALT_CHECK_LABEL), first 16 hex: tells whether the salt in use is the one
   * the keys were hashed under (it says nothing about the salt itself). Absent in older files.
   */
  salt_check?: string
  /**
   * HMAC-SHA256 of the `keys` array as written, under a key derived from the salt: an edit made
   * outside the gateway (a scope widened, a key added, a revocation undone) does not match.
   * Absent in files written before it existed.
   */
  mac?: string
  keys: ClientKeyRecord[]
}

const SALT_CHECK_LABEL = 'gatehouse client-key salt check'
const MAC_KEY_LABEL = 'gatehouse client-key file integrity'

/** What the gateway's management API and CLI need of a key store, file-backed or shared. */
export interface ManagedKeyStore extends ClientKeyStore {
  list(): ClientKeyRecord[]
  create(input: CreateKeyInput): CreatedKey | Promise<CreatedKey>
  revoke(id: string): ClientKeyRecord | Promise<ClientKeyRecord>
  rotate(id: string, graceMs: number): Rotated | Promise<Rotated>
  /** Why no key authenticates right now (an unreadable file, a stale shared copy), or undefined. */
  readonly lastError: string | undefined
}

/**
 * The in-memory index every store serves lookups from: records by salted hash, scopes frozen, the
 * final comparison constant-time. Subclasses say how the index is kept current.
 */
export abstract class KeyIndex implements ClientKeyStore {
  protected byHash = new Map<string, ClientKeyRecord>()
  private hashBytes = new Map<string, Buffer>()
  protected readonly salt: Buffer

  constructor(salt: string | Buffer) {
    this.salt = parseSalt(salt)
  }

  hash(key: string): string {
    return hashClientKey(key, this.salt)
  }

  verify(key: string): ClientKeyRecord | undefined {
    return this.verifyHash(this.hash(key))
  }

  verifyHash(hash: string): ClientKeyRecord | undefined {
    this.refresh(false)
    // The map lookup is keyed by an HMAC under a secret salt, so its timing tells an attacker
    // nothing about stored keys; the final comparison is constant-time all the same (against the
    // stored hash's bytes, decoded once when the file is loaded).
    const record = this.byHash.get(hash)
    if (!record) return undefined
    const expected = this.hashBytes.get(hash)
    return expected !== undefined && bytesEqualHex(expected, hash) ? record : undefined
  }

  list(): ClientKeyRecord[] {
    this.refresh(true)
    return [...this.byHash.values()].map((r) => ({ ...r }))
  }

  /** A new key and its record for `input` (scope checked), its id unique among the indexed ones. */
  protected draw(input: CreateKeyInput): CreatedKey {
    validateKeyScope(input)
    const ids = new Set([...this.byHash.values()].map((r) => r.id))
    for (;;) {
      const key = generateClientKey()
      const hash = this.hash(key)
      const id = keyIdFromHash(hash)
      if (ids.has(id)) continue // 32-bit id collision: draw again so ids stay unique
      const record: ClientKeyRecord = { id, name: input.name, hash, created_at: new Date().toISOString() }
      if (input.providers) record.providers = [...input.providers]
      if (input.endpoints) record.endpoints = [...input.endpoints]
      if (input.models) record.models = [...input.models]
      if (input.limits) record.limits = structuredClone(input.limits)
      if (input.networks) record.networks = [...input.networks]
      if (input.expiresAt) record.expires_at = input.expiresAt.toISOString()
      return { key, record }
    }
  }

  /**
   * A successor for key `id` with the same name and scope, and the old record kept valid for
   * `graceMs` more (never longer than it already was): both, to be stored together.
   */
  protected successor(id: string, graceMs: number): { created: CreatedKey; old: ClientKeyRecord } {
    if (!Number.isSafeInteger(graceMs) || graceMs < 0) {
      throw new GatehouseError(ClientAuthErrorCodes.GH_AUTH_INVALID_SCOPE, `@gatehouse/client-auth: grace must be a whole number of ms, at least 0 (got ${JSON.stringify(graceMs)})`, 400)
    }
    const found = this.find(id)
    const now = Date.now()
    if (found.revoked_at || found.rotated_to || (found.expires_at && Date.parse(found.expires_at) <= now)) {
      throw new GatehouseError(ClientAuthErrorCodes.GH_AUTH_INVALID_SCOPE, `@gatehouse/client-auth: key ${id} is revoked, expired or already rotated`, 409)
    }
    const created = this.draw({
      name: found.name,
      ...(found.providers ? { providers: [...found.providers] } : {}),
      ...(found.endpoints ? { endpoints: [...found.endpoints] } : {}),
      ...(found.models ? { models: [...found.models] } : {}),
      ...(found.limits ? { limits: structuredClone(found.limits) } : {}),
      ...(found.networks ? { networks: [...found.networks] } : {}),
    })
    created.record.rotated_from = found.id
    const until = Math.min(now + graceMs, found.expires_at ? Date.parse(found.expires_at) : Infinity)
    return { created, old: { ...found, expires_at: new Date(until).toISOString(), rotated_to: created.record.id } }
  }

  /** The record with this id, or GH_AUTH_KEY_NOT_FOUND (404). */
  protected find(id: string): ClientKeyRecord {
    for (const r of this.byHash.values()) if (r.id === id) return r
    throw new GatehouseError('GH_AUTH_KEY_NOT_FOUND', `@gatehouse/client-auth: no key with id ${JSON.stringify(id)}`, 404)
  }

  protected index(records: ClientKeyRecord[]): void {
    // Scopes are read on every request: frozen once here, so no layer can change them.
    for (const r of records) {
      if (r.providers) Object.freeze(r.providers)
      if (r.endpoints) Object.freeze(r.endpoints)
      if (r.models) Object.freeze(r.models)
      if (r.networks) Object.freeze(r.networks)
      if (r.limits) {
        for (const l of Object.values(r.limits.providers ?? {})) Object.freeze(l)
        Object.freeze(r.limits.providers)
        Object.freeze(r.limits)
      }
    }
    this.byHash = new Map(records.map((r) => [r.hash, r]))
    this.hashBytes = new Map(records.map((r) => [r.hash, Buffer.from(r.hash, 'hex')]))
  }

  /**
   * Bring the index up to date with the backing store. `force`: a read-modify-write (create,
   * revoke) or a listing, which must see the latest state; otherwise a lookup on the request path.
   */
  protected abstract refresh(force: boolean): void
}

/** A stored record as read back (a file edited by hand, a shared store): GH_AUTH_KEYFILE_CORRUPT naming the fault. */
export function checkStoredRecord(r: ClientKeyRecord, where: string): void {
  if (typeof r?.hash !== 'string' || !/^[0-9a-f]{64}$/.test(r.hash) || typeof r.id !== 'string') {
    throw new GatehouseConfigError('GH_AUTH_KEYFILE_CORRUPT', `@gatehouse/client-auth: ${where} has a malformed entry`)
  }
  // A scope edited by hand is checked as one given to create(): a limit that is not a number must
  // not read as "no limit".
  try {
    validateKeyScope(r)
  } catch (e) {
    throw new GatehouseConfigError('GH_AUTH_KEYFILE_CORRUPT', `@gatehouse/client-auth: ${where}: key ${r.id}: ${(e as Error).message.replace('@gatehouse/client-auth: ', '')}`)
  }
}

/** A store whose changes are made here, synchronously (a file, memory). */
abstract class IndexedKeyStore extends KeyIndex {
  create(input: CreateKeyInput): CreatedKey {
    this.refresh(true)
    const { key, record } = this.draw(input)
    this.save([...this.byHash.values(), record])
    return { key, record: { ...record } }
  }

  /** A successor with the same scope; the old key stays valid for `graceMs`. */
  rotate(id: string, graceMs: number): Rotated {
    this.refresh(true)
    const { created, old } = this.successor(id, graceMs)
    this.save([...[...this.byHash.values()].map((r) => (r.id === id ? old : r)), created.record])
    return { key: created.key, record: { ...created.record }, previous: { ...old } }
  }

  /** Revoke by id; returns the revoked record. Revoked keys stay listed, marked. */
  revoke(id: string): ClientKeyRecord {
    this.refresh(true)
    const found = this.find(id)
    if (found.revoked_at) return { ...found }
    const updated = { ...found, revoked_at: new Date().toISOString() }
    this.save([...this.byHash.values()].map((r) => (r === found ? updated : r)))
    return { ...updated }
  }

  protected abstract save(records: ClientKeyRecord[]): void
}

/** Keys held in memory only (tests, embedding apps that manage keys themselves). */
export class MemoryKeyStore extends IndexedKeyStore {
  readonly lastError: string | undefined = undefined
  protected refresh(): void {}
  protected save(records: ClientKeyRecord[]): void {
    this.index(records)
  }
}

export interface FileKeyStoreOptions {
  /** Path of the key file (created 0600, its directory 0700). */
  file: string
  salt: string | Buffer
  logger?: Logger
  /** Accept a key file readable by group or others. @default false */
  allowInsecurePermissions?: boolean
  /**
   * How a lookup learns that another process changed the file. `watch`: a change notification
   * from the operating system (inotify, FSEvents) marks the file for re-reading, and a lookup
   * checks the file itself at most once a second besides; `stat`: every lookup checks the file's
   * identity, which costs a system call per request. `watch` falls back to `stat` where the file
   * system gives no notifications. @default "watch"
   */
  reload?: 'watch' | 'stat'
}

/** With a watcher, a lookup still checks the file itself this often, should a notification be lost. */
const BACKSTOP_MS = 1000

/**
 * Keys in a 0600 JSON file, reloaded when it changes, so a key revoked by `gatehouse keys revoke`
 * in another process stops working on the next request, kept-alive connections included. The
 * directory is watched: the kernel queues the change notification before the revoking command
 * returns, and the event loop handles it before any request that arrives later. Where there are
 * no notifications (`reload: 'stat'`, or a file system without them), every lookup compares the
 * file's identity (inode, size, times, mode) instead. A file that becomes unreadable, insecure or
 * corrupt fails closed: no key authenticates until it is fixed.
 */
export class FileKeyStore extends IndexedKeyStore {
  readonly file: string
  private readonly logger: Logger
  private readonly allowInsecure: boolean
  private signature = ''
  private watcher: FSWatcher | undefined
  private changed = true
  /** The file loaded at start had no integrity check (written before it existed). */
  private unsealed = false
  private lastCheck = 0
  /** The last load error, or undefined when the file loaded. */
  lastError: string | undefined

  constructor(options: FileKeyStoreOptions) {
    super(options.salt)
    this.file = options.file
    this.logger = options.logger ?? noopLogger
    this.allowInsecure = options.allowInsecurePermissions ?? false
    const dir = dirname(this.file)
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 })
    if (!existsSync(this.file)) this.save([])
    this.load(true)
    if (this.unsealed) {
      this.logger.warn(`@gatehouse/client-auth: key file ${this.file} had no integrity check (written by an older version, or edited); it is sealed now, and edits made outside Gatehouse from here on are refused`)
      this.save([...this.byHash.values()])
      this.unsealed = false
    }
    if ((options.reload ?? 'watch') === 'watch') this.watch(dir)
  }

  /** Stop watching the key file's directory (lookups then check the file every time). */
  close(): void {
    this.watcher?.close()
    this.watcher = undefined
  }

  private watch(dir: string): void {
    const name = basename(this.file)
    try {
      // persistent: false, so a store never keeps a process alive on its own.
      this.watcher = watch(dir, { persistent: false }, (_event, changed) => {
        if (changed === null || changed === name) this.changed = true
      })
      this.watcher.on('error', () => this.close())
    } catch {
      this.watcher = undefined
    }
  }

  protected refresh(force: boolean): void {
    const now = Date.now()
    if (this.watcher && !force && !this.changed && now - this.lastCheck < BACKSTOP_MS) return
    this.changed = false
    this.lastCheck = now
    let sig: string
    try {
      // One stat per lookup (a few microseconds): a change by another process is seen at once.
      const st = statSync(this.file)
      sig = `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.mode}`
    } catch {
      sig = 'missing'
    }
    if (sig !== this.signature) {
      this.signature = sig
      this.load(false)
    }
  }

  private load(atStart: boolean): void {
    try {
      const reason = this.allowInsecure ? undefined : insecureFileReason(this.file)
      if (reason) {
        throw new GatehouseConfigError('GH_AUTH_KEYFILE_INSECURE', `@gatehouse/client-auth: key file ${this.file} ${reason}`)
      }
      const parsed = JSON.parse(readFileSync(this.file, 'utf8')) as Partial<KeyFile>
      if (parsed.version !== 1 || !Array.isArray(parsed.keys)) {
        throw new GatehouseConfigError('GH_AUTH_KEYFILE_CORRUPT', `@gatehouse/client-auth: key file ${this.file} is not a Gatehouse key file`)
      }
      for (const r of parsed.keys) checkStoredRecord(r, `key file ${this.file}`)
      // Another salt would silently invalidate every key (each still listed as active): refused.
      if (parsed.keys.length > 0 && parsed.salt_check !== undefined && parsed.salt_check !== this.saltCheck()) {
        throw new GatehouseConfigError(
          ClientAuthErrorCodes.GH_AUTH_SALT_CHANGED,
          `@gatehouse/client-auth: key file ${this.file} holds ${parsed.keys.length} key(s) hashed under another salt, so none of them would authenticate: restore the salt they were issued under (auth.key_salt / GATEHOUSE_KEY_SALT, or the generated one in the auth directory), or move the key file away and issue new keys`,
        )
      }
      // Edited outside the gateway: trusted with no key at all, as a corrupt file is.
      const mac = this.macOf(JSON.stringify(parsed.keys))
      // A file without its check while running is one whose check was stripped; at start it may be
      // one written before checks existed: accepted then, logged, and sealed (see the constructor).
      const unsealed = parsed.mac === undefined && parsed.keys.length > 0
      if ((unsealed && !atStart) || (parsed.keys.length > 0 && parsed.mac !== undefined && !(typeof parsed.mac === 'string' && parsed.mac.length === mac.length && timingSafeEqual(Buffer.from(parsed.mac), Buffer.from(mac))))) {
        throw new GatehouseConfigError(
          ClientAuthErrorCodes.GH_AUTH_KEYFILE_TAMPERED,
          `@gatehouse/client-auth: key file ${this.file} was changed outside Gatehouse (its integrity check does not match): no key authenticates until it is restored from a backup, or moved away and the keys issued again`,
        )
      }
      if (unsealed) this.unsealed = true
      this.index(parsed.keys)
      const st = statSync(this.file)
      this.signature = `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.mode}`
      this.lastError = undefined
    } catch (err) {
      const message =
        err instanceof GatehouseConfigError ? err.message : `@gatehouse/client-auth: cannot read key file ${this.file}`
      if (atStart) throw err instanceof GatehouseConfigError ? err : new GatehouseConfigError('GH_AUTH_KEYFILE_CORRUPT', message, { cause: err })
      // Fail closed: a key file we cannot trust authenticates nobody.
      this.index([])
      if (this.lastError !== message) this.logger.error(message)
      this.lastError = message
    }
  }

  /** The integrity check of a `keys` array as written. */
  private macOf(keysJson: string): string {
    return createHmac('sha256', Buffer.from(hashClientKey(MAC_KEY_LABEL, this.salt), 'hex')).update(keysJson).digest('hex')
  }

  private saltCheck(): string {
    return hashClientKey(SALT_CHECK_LABEL, this.salt).slice(0, 16)
  }

  protected save(records: ClientKeyRecord[]): void {
    const body: KeyFile = { version: 1, salt_check: this.saltCheck(), mac: this.macOf(JSON.stringify(records)), keys: records }
    writeFileAtomicSync(this.file, `${JSON.stringify(body, null, 2)}\n`, 0o600)
    chmodSync(this.file, 0o600)
    this.index(records)
    this.signature = ''
  }
}
