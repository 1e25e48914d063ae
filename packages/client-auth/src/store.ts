import { existsSync, mkdirSync, readFileSync, statSync, chmodSync } from 'node:fs'
import { dirname } from 'node:path'
import { GatehouseConfigError, GatehouseError, insecureFileReason, writeFileAtomicSync, type Logger, noopLogger } from '@gatehouse/core'
import { generateClientKey, hashClientKey, hashesEqual, keyIdFromHash, parseSalt } from './keys'

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
  /** Providers this key may call; all when absent. */
  providers?: string[]
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
  providers?: string[]
  expiresAt?: Date
}

export interface CreatedKey {
  /** The plaintext key: shown once, never stored. */
  key: string
  record: ClientKeyRecord
}

interface KeyFile {
  version: 1
  keys: ClientKeyRecord[]
}

abstract class IndexedKeyStore implements ClientKeyStore {
  protected byHash = new Map<string, ClientKeyRecord>()
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
    this.refresh()
    // The map lookup is keyed by an HMAC under a secret salt, so its timing tells an attacker
    // nothing about stored keys; the final comparison is constant-time all the same.
    const record = this.byHash.get(hash)
    return record && hashesEqual(record.hash, hash) ? record : undefined
  }

  list(): ClientKeyRecord[] {
    this.refresh()
    return [...this.byHash.values()].map((r) => ({ ...r }))
  }

  create(input: CreateKeyInput): CreatedKey {
    this.refresh()
    const ids = new Set([...this.byHash.values()].map((r) => r.id))
    for (;;) {
      const key = generateClientKey()
      const hash = this.hash(key)
      const id = keyIdFromHash(hash)
      if (ids.has(id)) continue // 32-bit id collision: draw again so ids stay unique
      const record: ClientKeyRecord = { id, name: input.name, hash, created_at: new Date().toISOString() }
      if (input.providers?.length) record.providers = [...input.providers]
      if (input.expiresAt) record.expires_at = input.expiresAt.toISOString()
      this.save([...this.byHash.values(), record])
      return { key, record: { ...record } }
    }
  }

  /** Revoke by id; returns the revoked record. Revoked keys stay listed, marked. */
  revoke(id: string): ClientKeyRecord {
    this.refresh()
    const records = [...this.byHash.values()]
    const found = records.find((r) => r.id === id)
    if (!found) throw new GatehouseError('GH_AUTH_KEY_NOT_FOUND', `@gatehouse/client-auth: no key with id ${JSON.stringify(id)}`, 404)
    if (!found.revoked_at) {
      const updated = { ...found, revoked_at: new Date().toISOString() }
      this.save(records.map((r) => (r === found ? updated : r)))
      return { ...updated }
    }
    return { ...found }
  }

  protected index(records: ClientKeyRecord[]): void {
    this.byHash = new Map(records.map((r) => [r.hash, r]))
  }

  protected abstract refresh(): void
  protected abstract save(records: ClientKeyRecord[]): void
}

/** Keys held in memory only (tests, embedding apps that manage keys themselves). */
export class MemoryKeyStore extends IndexedKeyStore {
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
}

/**
 * Keys in a 0600 JSON file. Every lookup checks the file's identity (inode, size, mtime) and
 * reloads it when it changed, so a key revoked by `gatehouse keys revoke` in another process stops
 * working on the very next request, kept-alive connections included. A file that becomes
 * unreadable, insecure or corrupt fails closed: no key authenticates until it is fixed.
 */
export class FileKeyStore extends IndexedKeyStore {
  readonly file: string
  private readonly logger: Logger
  private readonly allowInsecure: boolean
  private signature = ''
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
  }

  protected refresh(): void {
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
      for (const r of parsed.keys) {
        if (typeof r?.hash !== 'string' || !/^[0-9a-f]{64}$/.test(r.hash) || typeof r.id !== 'string') {
          throw new GatehouseConfigError('GH_AUTH_KEYFILE_CORRUPT', `@gatehouse/client-auth: key file ${this.file} has a malformed entry`)
        }
      }
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

  protected save(records: ClientKeyRecord[]): void {
    const body: KeyFile = { version: 1, keys: records }
    writeFileAtomicSync(this.file, `${JSON.stringify(body, null, 2)}\n`, 0o600)
    chmodSync(this.file, 0o600)
    this.index(records)
    this.signature = ''
  }
}
