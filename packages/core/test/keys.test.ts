import { randomBytes } from 'node:crypto'
import * as zlib from 'node:zlib'
import { clientKeyLookAlikes, FAKE_KEYS, fakeChecksummedClientKey } from '@gatehouse/testing'
import {
  CLIENT_KEY_PATTERN,
  clientKeyChecksum,
  crc32,
  DOCUMENTED_CLIENT_KEYS,
  hasValidClientKeyChecksum,
  LEGACY_CLIENT_KEY_PATTERN,
  SecretMatcher,
  toBase62,
} from '../src'

describe('crc32', () => {
  it('gives the standard check value and agrees with zlib where zlib has crc32', () => {
    expect(crc32('123456789')).toBe(0xcbf43926)
    expect(crc32('')).toBe(0)
    expect(crc32('cl\u00e9')).toBe(crc32(Buffer.from('cl\u00e9', 'utf8')))
    const zlibCrc = (zlib as unknown as { crc32?: (data: Uint8Array) => number }).crc32
    for (let i = 0; i < 50; i++) {
      const bytes = randomBytes(i * 7)
      if (zlibCrc) expect(crc32(bytes)).toBe(zlibCrc(bytes))
    }
  })

  it('writes fixed-width base62', () => {
    expect(toBase62(0, 6)).toBe('000000')
    expect(toBase62(61, 2)).toBe('0z')
    expect(toBase62(0xffffffff, 6)).toHaveLength(6)
  })
})

describe('client key checksum', () => {
  it('accepts a key of the current shape with its checksum, and nothing else', () => {
    const key = fakeChecksummedClientKey()
    expect(key).toMatch(CLIENT_KEY_PATTERN)
    expect(hasValidClientKeyChecksum(key)).toBe(true)
    expect(hasValidClientKeyChecksum(fakeChecksummedClientKey('test'))).toBe(true)
    for (const lookAlike of clientKeyLookAlikes()) expect(hasValidClientKeyChecksum(lookAlike)).toBe(false)
    // A key issued before checksums has another shape: it is not "a bad checksum".
    const legacy = FAKE_KEYS['gatehouse-client-key']!()
    expect(legacy).toMatch(LEGACY_CLIENT_KEY_PATTERN)
    expect(hasValidClientKeyChecksum(legacy)).toBe(false)
    expect(clientKeyChecksum(key.slice(10, 53))).toBe(key.slice(54))
  })

  it('makes the secret rule report checksummed keys and legacy keys, never a look-alike of the current shape', () => {
    const matcher = new SecretMatcher()
    const key = fakeChecksummedClientKey()
    const legacy = FAKE_KEYS['gatehouse-client-key']!()
    expect(matcher.findAll(`KEY=${key}\n`).map((m) => [m.rule.id, m.secret])).toEqual([['gatehouse-client-key', key]])
    expect(matcher.findAll(`KEY=${legacy}\n`).map((m) => m.secret)).toEqual([legacy])
    for (const lookAlike of clientKeyLookAlikes()) expect(matcher.findAll(`KEY=${lookAlike}\n`)).toEqual([])
    for (const documented of DOCUMENTED_CLIENT_KEYS) expect(matcher.findAll(documented)).toEqual([])
  })
})
