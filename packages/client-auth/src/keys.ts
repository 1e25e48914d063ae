import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { CLIENT_KEY_PATTERN, CLIENT_KEY_PREFIX, GatehouseConfigError } from '@gatehouse/core'

/** A new client key: `gate_live_` + 43 base64url characters (256 random bits). */
export function generateClientKey(): string {
  return CLIENT_KEY_PREFIX + randomBytes(32).toString('base64url')
}

/** True when the value has the exact shape of a client key. */
export const isClientKeyFormat = (value: string): boolean => CLIENT_KEY_PATTERN.test(value)

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
