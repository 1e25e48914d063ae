import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { GatehouseError } from '@gatehouse/core'
import { CredentialVaultErrorCodes } from './errors'
import type { Keyring } from './keyring'

/** The algorithm name written in every envelope. */
export const ENVELOPE_ALG = 'A256GCM'
const NONCE_BYTES = 12
const TAG_BYTES = 16

/**
 * The on-disk form of an encrypted credential: version, key id, algorithm, the 96-bit nonce, the
 * 128-bit tag and the ciphertext (base64). The credential id is bound as additional authenticated
 * data, so a ciphertext copied into another credential's file fails authentication.
 */
export interface Envelope {
  v: 1
  kid: string
  alg: typeof ENVELOPE_ALG
  nonce: string
  tag: string
  ct: string
}

/** The additional authenticated data: format version, algorithm, key id and credential id. */
function aad(kid: string, id: string): Buffer {
  return Buffer.from(`gatehouse-vault:v1:${ENVELOPE_ALG}:${kid}:${id}`, 'utf8')
}

export function isEnvelopeShaped(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    'ct' in value &&
    'nonce' in value &&
    'tag' in value
  )
}

/** Encrypt a credential's plaintext under the keyring's current key with a fresh random nonce. */
export function seal(keyring: Keyring, id: string, plaintext: Buffer): Envelope {
  const { kid, key } = keyring.current
  const nonce = randomBytes(NONCE_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(aad(kid, id))
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()])
  const tag = cipher.getAuthTag()
  return { v: 1, kid, alg: ENVELOPE_ALG, nonce: nonce.toString('base64'), tag: tag.toString('base64'), ct: ct.toString('base64') }
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/

function decodeField(env: Record<string, unknown>, field: string, bytes?: number): Buffer {
  const value = env[field]
  if (typeof value !== 'string' || !B64.test(value) || value.length % 4 !== 0) {
    throw invalidEnvelope(`field "${field}" is not base64`)
  }
  const buf = Buffer.from(value, 'base64')
  if (bytes !== undefined && buf.length !== bytes) throw invalidEnvelope(`field "${field}" must be ${bytes} bytes`)
  return buf
}

function invalidEnvelope(reason: string): GatehouseError {
  return new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_INVALID_FILE, `invalid envelope: ${reason}`)
}

/**
 * Check and decrypt an envelope for the credential `id`. Throws GH_VAULT_INVALID_FILE (bad shape),
 * GH_VAULT_UNKNOWN_KEY_ID (key not configured) or GH_VAULT_DECRYPT_FAILED (tag mismatch).
 */
export function open(keyring: Keyring, id: string, env: Record<string, unknown>): { plaintext: Buffer; kid: string } {
  if (env.v !== 1) throw invalidEnvelope('unsupported version')
  if (env.alg !== ENVELOPE_ALG) throw invalidEnvelope('unsupported algorithm')
  if (typeof env.kid !== 'string' || !/^k[0-9a-f]{16}$/.test(env.kid)) throw invalidEnvelope('bad key id')
  const nonce = decodeField(env, 'nonce', NONCE_BYTES)
  const tag = decodeField(env, 'tag', TAG_BYTES)
  const ct = decodeField(env, 'ct')
  const entry = keyring.get(env.kid)
  if (!entry) {
    throw new GatehouseError(
      CredentialVaultErrorCodes.GH_VAULT_UNKNOWN_KEY_ID,
      `encrypted under key ${env.kid}, which is not configured (configured: ${keyring.keyIds.join(', ')})`,
    )
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', entry.key, nonce, { authTagLength: TAG_BYTES })
    decipher.setAAD(aad(entry.kid, id))
    decipher.setAuthTag(tag)
    const plaintext = Buffer.concat([decipher.update(ct), decipher.final()])
    return { plaintext, kid: entry.kid }
  } catch {
    throw new GatehouseError(
      CredentialVaultErrorCodes.GH_VAULT_DECRYPT_FAILED,
      'authentication failed: the key is wrong, or the file was altered, truncated or moved from another credential',
    )
  }
}
