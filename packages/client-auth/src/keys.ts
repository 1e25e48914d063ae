import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import {
  BASE62,
  CLIENT_KEY_PATTERN,
  CLIENT_KEY_PREFIX,
  CLIENT_KEY_RANDOM_LENGTH,
  clientKeyChecksum,
  GatehouseConfigError,
  LEGACY_CLIENT_KEY_PATTERN,
} from '@gatehouse/core'

/** `n` characters drawn uniformly from BASE62 (bytes of 248 and above are drawn again: no bias). */
function randomBase62(n: number): string {
  let out = ''
  while (out.length < n) {
    for (const b of randomBytes(n + 8)) {
      if (b < 248 && out.length < n) out += BASE62[b % 62]
    }
  }
  return out
}

/**
 * A new client key: `gate_live_`, 43 base62 characters (256 random bits), `_`, and the CRC-32 of
 * the random part as 6 base62 characters, so secret scanners can tell a leaked key from a
 * look-alike (see @gatehouse/security-check).
 */
export function generateClientKey(): string {
  const random = randomBase62(CLIENT_KEY_RANDOM_LENGTH)
  return `${CLIENT_KEY_PREFIX}${random}_${clientKeyChecksum(random)}`
}

/**
 * True when the value has the exact shape of a client key: the current one (its checksum is not
 * checked here: an issued key authenticates by its hash alone) or one issued before checksums.
 */
export const isClientKeyFormat = (value: string): boolean => CLIENT_KEY_PATTERN.test(value) || LEGACY_CLIENT_KEY_PATTERN.test(value)

/** The salt as bytes: at least 16 bytes, given as hex, base64 or raw text. Never echoed in errors. */
export function parseSalt(salt: string | Buffer): Buffer {
  const buf = Buffer.isBuffer(salt)
    ? salt
    : /^[0-9a-f]+$/i.test(salt) && salt.length % 2 === 0
      ? Buffer.from(salt, 'hex')
      : Buffer.from(salt, 'utf8')
  if (buf.length < 16) {
    throw new GatehouseConfigError(
      'GH_AUTH_SALT_INVALID',
      '@gatehouse/client-auth: salt must be at least 16 bytes (32 hex characters); the value is not shown',
    )
  }
  return buf
}

/** HMAC-SHA256 of a key under the server-side salt, hex. This is all that is ever stored. */
export function hashClientKey(key: string, salt: Buffer): string {
  return createHmac('sha256', salt).update(key, 'utf8').digest('hex')
}

/** The public id that logs, metrics and events carry: `key_` + the first 8 hex of the hash. */
export const keyIdFromHash = (hash: string): string => `key_${hash.slice(0, 8)}`

/** Constant-time equality of stored hash bytes and a hex hash. */
export function bytesEqualHex(expected: Buffer, hex: string): boolean {
  const got = Buffer.from(hex, 'hex')
  return got.length === expected.length && got.length > 0 && timingSafeEqual(expected, got)
}
