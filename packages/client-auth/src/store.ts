import { GatehouseError, type KeyLimitScope } from '@gatehouse/core'
import { ClientAuthErrorCodes } from './errors'
import { bytesEqualHex, generateClientKey, hashClientKey, keyIdFromHash, parseSalt } from './keys'
import { validateKeyScope, type CreateKeyInput } from './scope'

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
  /**
   * Provider objects (ids) the key may refer to besides those it made through the gateway: an
   * operator's grant of, say, a vector store made outside it. Only its own when absent.
   */
  objects?: string[]
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

/** A rotation: the successor (its key shown once) and the old record with its end of grace. */
export interface Rotated extends CreatedKey {
  previous: ClientKeyRecord
}

export interface CreatedKey {
  /** The plaintext key: shown once, never stored. */
  key: string
  record: ClientKeyRecord
}

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
      if (input.objects) record.objects = [...input.objects]
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
      ...(found.objects ? { objects: [...found.objects] } : {}),
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
      if (r.objects) Object.freeze(r.objects)
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

/** A store whose changes are made here, synchronously (a file, memory). */
export abstract class IndexedKeyStore extends KeyIndex {
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
