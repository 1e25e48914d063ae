import { crc32 } from './crc32'

/** Gatehouse client keys start with this. */
export const CLIENT_KEY_PREFIX = 'gate_live_'

/** The alphabet of a client key's random part and checksum: letters and digits, nothing a scanner splits on. */
export const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
/** Base62 characters of a client key's random part: 43 of them hold 256 random bits. */
export const CLIENT_KEY_RANDOM_LENGTH = 43
/** Base62 characters of a client key's checksum: 6 hold any CRC-32. */
export const CLIENT_KEY_CHECKSUM_LENGTH = 6

/**
 * The exact shape of a client key: `gate_live_`, 43 base62 characters (256 random bits), `_`, and
 * the CRC-32 of the random part as 6 base62 characters. The checksum lets a secret scanner tell a
 * real key from a random string of the same shape without asking anyone.
 */
export const CLIENT_KEY_PATTERN = /^gate_live_[A-Za-z0-9]{43}_[A-Za-z0-9]{6}$/

/**
 * The shape of client keys issued before keys had a checksum: `gate_live_` + 43 base64url
 * characters. They still authenticate; rotating them issues keys of the current shape.
 */
export const LEGACY_CLIENT_KEY_PATTERN = /^gate_live_[A-Za-z0-9_-]{43}$/

/** `n` as exactly `width` base62 digits, most significant first (zero-padded). */
export function toBase62(n: number, width: number): string {
  let out = ''
  let rest = n
  for (let i = 0; i < width; i++) {
    out = BASE62[rest % 62]! + out
    rest = Math.floor(rest / 62)
  }
  return out
}

/** The checksum of a client key's random part: its CRC-32 as 6 base62 digits. */
export const clientKeyChecksum = (random: string): string => toBase62(crc32(random), CLIENT_KEY_CHECKSUM_LENGTH)

/**
 * True when `key` has the current shape (`gate_live_` or `gate_test_`, random part, `_`, checksum)
 * and its checksum matches its random part. Says nothing of whether the key is issued.
 */
export function hasValidClientKeyChecksum(key: string): boolean {
  if (!/^gate_(?:live|test)_[A-Za-z0-9]{43}_[A-Za-z0-9]{6}$/.test(key)) return false
  const random = key.slice(10, 10 + CLIENT_KEY_RANDOM_LENGTH)
  return key.slice(-CLIENT_KEY_CHECKSUM_LENGTH) === clientKeyChecksum(random)
}

/**
 * The client keys printed in Gatehouse's own documentation and `config.example.yaml`. They never
 * authenticate: presenting one is a `security_violation` (a honeytoken), and the secret scanner
 * treats them as documented examples, not leaks.
 */
export const DOCUMENTED_CLIENT_KEYS: readonly string[] = Object.freeze([
  'gate_live_EXAMPLE0do0not0use0this0key0it0never0works0',
  'gate_live_DOCS0sample0key0for0the0gatehouse0readme000',
])
