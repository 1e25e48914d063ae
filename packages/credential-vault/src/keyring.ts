import { createHmac, randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import { GatehouseConfigError } from '@gatehouse/core'
import { CredentialVaultErrorCodes, PKG } from './errors'

const HEX_64 = /^[0-9a-fA-F]{64}$/
const BASE64_32 = /^[A-Za-z0-9+/]{43}=?$/
const BASE64URL_32 = /^[A-Za-z0-9_-]{43}=?$/

/** What a configured key may be: the interpolated config string, or bytes. */
export type EncryptionKeyInput = string | Buffer | Uint8Array

/**
 * Parse an encryption key given as 32 raw bytes, 64 hex characters or base64 (standard or
 * url-safe) of 32 bytes. Anything else throws GH_VAULT_INVALID_KEY; the value is never quoted.
 * `name` is the option path used in the message (`encryption.key`).
 */
export function parseEncryptionKey(input: unknown, name = 'encryption.key'): Buffer {
  if (Buffer.isBuffer(input) || input instanceof Uint8Array) {
    if (input.length === 32) return Buffer.from(input)
    throw invalidKey(name, `a byte array of ${input.length} bytes`)
  }
  if (typeof input !== 'string') throw invalidKey(name, `a value of type ${input === null ? 'null' : typeof input}`)
  const trimmed = input.trim()
  if (HEX_64.test(trimmed)) return Buffer.from(trimmed, 'hex')
  if (BASE64_32.test(trimmed) || BASE64URL_32.test(trimmed)) {
    const bytes = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64')
    if (bytes.length === 32) return bytes
  }
  const raw = Buffer.from(input, 'utf8')
  if (raw.length === 32) return raw
  raw.fill(0)
  throw invalidKey(name, input.length === 0 ? 'an empty string' : `a string of ${Buffer.byteLength(input)} bytes`)
}

function invalidKey(name: string, got: string): GatehouseConfigError {
  return new GatehouseConfigError(
    CredentialVaultErrorCodes.GH_VAULT_INVALID_KEY,
    `${PKG}: ${name} must be 32 bytes, given raw, as 64 hex characters or as base64 (got ${got}; the value is not shown)`,
  )
}

/** A new random key, base64-encoded, for `auth.encryption.key`. */
export function generateEncryptionKey(): string {
  return randomBytes(32).toString('base64')
}

/** The public id of a key: `k` + 16 hex of HMAC-SHA256(key, label). Reveals nothing about the key. */
export function keyIdOf(key: Buffer): string {
  return `k${createHmac('sha256', key).update('gatehouse-vault-key-id').digest('hex').slice(0, 16)}`
}

export interface KeyringKey {
  readonly kid: string
  readonly key: Buffer
}

/**
 * The configured keys: the first (the current key) encrypts, every key decrypts. Key material is
 * never serialised or printed: JSON and util.inspect show key ids only.
 */
export class Keyring {
  readonly current: KeyringKey
  private readonly byId: ReadonlyMap<string, KeyringKey>

  constructor(keys: readonly Buffer[]) {
    if (keys.length === 0) throw new Error('a keyring needs at least one key')
    const byId = new Map<string, KeyringKey>()
    for (const key of keys) {
      const kid = keyIdOf(key)
      if (!byId.has(kid)) byId.set(kid, Object.freeze({ kid, key }))
    }
    this.byId = byId
    this.current = byId.get(keyIdOf(keys[0]!))!
  }

  get(kid: string): KeyringKey | undefined {
    return this.byId.get(kid)
  }

  get keyIds(): string[] {
    return [...this.byId.keys()]
  }

  toJSON(): unknown {
    return { current: this.current.kid, keys: this.keyIds }
  }

  [inspect.custom](): string {
    return `Keyring { current: ${this.current.kid}, keys: [${this.keyIds.join(', ')}] }`
  }
}
