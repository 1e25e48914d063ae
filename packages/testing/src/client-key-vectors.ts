import { clientKeyChecksum } from '@gatehouse/core'
import { ALNUM, rand } from './secret-vectors'

/**
 * Test vectors for Gatehouse client keys with a checksum (the current shape): a key built at run
 * time as the gateway builds one, and look-alikes a scanner must not report.
 */

/** A client key of the current shape with a valid checksum (`gate_live_` or `gate_test_`). */
export function fakeChecksummedClientKey(kind: 'live' | 'test' = 'live'): string {
  const random = rand(ALNUM, 43)
  return `gate_${kind}_${random}_${clientKeyChecksum(random)}`
}

/**
 * Strings of the current key shape that are not keys: the checksum changed, two neighbouring
 * characters of the random part swapped (a CRC-32 catches every change within 32 bits), and a
 * random string with the checksum of another.
 */
export function clientKeyLookAlikes(): string[] {
  const key = fakeChecksummedClientKey()
  const random = key.slice(10, 53)
  const checksum = key.slice(54)
  const changed = `${checksum[0] === 'A' ? 'B' : 'A'}${checksum.slice(1)}`
  const at = [...random].findIndex((c, i) => i > 0 && c !== random[i - 1])
  const swapped = `${random.slice(0, at - 1)}${random[at]!}${random[at - 1]!}${random.slice(at + 1)}`
  const other = rand(ALNUM, 43)
  return [
    `gate_live_${random}_${changed}`,
    `gate_live_${swapped}_${checksum}`,
    `gate_live_${other}_${clientKeyChecksum(other) === checksum ? changed : checksum}`,
  ]
}
