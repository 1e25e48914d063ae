import ipaddr from 'ipaddr.js'

/**
 * Addresses are handled as 32-bit words: IPv4 is one word, IPv6 is four (most significant first),
 * every word an unsigned integer in [0, 2^32).
 */
export type Words = readonly [number, number, number, number]

/** A client address ready for lookups. */
export interface ClientAddress {
  /** The IPv6 address as four words, or undefined for a plain IPv4 address. */
  readonly v6: Words | undefined
  /**
   * The IPv4 address (one word) the client is, or embeds; -1 when there is none.
   * Plain IPv4 and IPv4-mapped IPv6 (`::ffff:a.b.c.d`) are the same address; IPv4-compatible
   * (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`) addresses embed one.
   */
  readonly v4: number
  /** How the IPv4 word was found. */
  readonly v4Source: 'ipv4' | 'mapped' | 'compatible' | 'nat64' | '6to4' | undefined
}

const HEX = new Int8Array(128).fill(-1)
for (let i = 0; i < 10; i++) HEX[48 + i] = i
for (let i = 0; i < 6; i++) {
  HEX[65 + i] = 10 + i
  HEX[97 + i] = 10 + i
}

/**
 * Strict dotted-quad parse of `s[start, end)`: four decimal parts 0-255 without leading zeros.
 * Returns -1 when the text is anything else (the caller then asks ipaddr.js, which also knows the
 * legacy forms such as `10.1` or octal parts).
 */
export function parseIpv4Fast(s: string, start = 0, end = s.length): number {
  let value = 0
  let part = 0
  let digits = 0
  let dots = 0
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i)
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1
      value = value * 256 + part
      dots++
      part = 0
      digits = 0
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return -1
      part = part * 10 + (c - 48)
      digits++
      if (part > 255) return -1
    } else {
      return -1
    }
  }
  if (digits === 0 || dots !== 3) return -1
  return value * 256 + part
}

/**
 * Strict IPv6 parse of `s[start, end)` (no zone, no brackets) into `out` (four words), using `g`
 * (eight slots) as scratch space. Returns false when the text is not one.
 */
export function parseIpv6Into(s: string, start: number, end: number, g: Int32Array, out: Uint32Array): boolean {
  let n = 0
  let gap = -1
  let i = start
  if (end - start < 2) return false
  if (s.charCodeAt(i) === 58) {
    if (s.charCodeAt(i + 1) !== 58) return false
    gap = 0
    i += 2
  }
  while (i < end) {
    let j = i
    let value = 0
    while (j < end) {
      const c = s.charCodeAt(j)
      const h = c < 128 ? HEX[c]! : -1
      if (h < 0) break
      value = value * 16 + h
      j++
    }
    if (j < end && s.charCodeAt(j) === 46) {
      const v4 = parseIpv4Fast(s, i, end)
      if (v4 < 0 || n > 6) return false
      g[n++] = v4 >>> 16
      g[n++] = v4 & 0xffff
      break
    }
    if (j === i || j - i > 4 || n === 8) return false
    g[n++] = value
    if (j === end) break
    if (s.charCodeAt(j) !== 58) return false
    j++
    if (j < end && s.charCodeAt(j) === 58) {
      if (gap >= 0) return false
      gap = n
      j++
    } else if (j === end) {
      return false
    }
    i = j
  }
  if (gap < 0) {
    if (n !== 8) return false
  } else {
    if (n > 7) return false
    // Move the groups after "::" to the end and zero the gap.
    const shift = 8 - n
    for (let k = n - 1; k >= gap; k--) g[k + shift] = g[k]!
    for (let k = gap; k < gap + shift; k++) g[k] = 0
  }
  out[0] = g[0]! * 65536 + g[1]!
  out[1] = g[2]! * 65536 + g[3]!
  out[2] = g[4]! * 65536 + g[5]!
  out[3] = g[6]! * 65536 + g[7]!
  return true
}

/** Strict IPv6 parse of `s[start, end)` (no zone, no brackets); undefined when not one. */
export function parseIpv6Fast(s: string, start = 0, end = s.length): Words | undefined {
  const out = new Uint32Array(4)
  if (!parseIpv6Into(s, start, end, new Int32Array(8), out)) return undefined
  return [out[0]!, out[1]!, out[2]!, out[3]!]
}

function wordsFromBytes(bytes: readonly number[]): number[] {
  const words: number[] = []
  for (let i = 0; i < bytes.length; i += 4) {
    words.push(((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0)
  }
  return words
}

/** 0: none, 1: IPv4-mapped, 2: IPv4-compatible, 3: NAT64, 4: 6to4. */
export function embeddedKind(a: number, b: number, c: number, d: number): 0 | 1 | 2 | 3 | 4 {
  if (a === 0 && b === 0) {
    if (c === 0x0000ffff) return 1
    if (c === 0 && d > 1) return 2
  }
  if (a === 0x0064ff9b && b === 0 && c === 0) return 3
  if (a >>> 16 === 0x2002) return 4
  return 0
}

/** The IPv4 address embedded in an IPv6 address of the given kind (see embeddedKind). */
export function embeddedWord(kind: number, a: number, b: number, d: number): number {
  if (kind === 0) return -1
  return kind === 4 ? (((a & 0xffff) << 16) | (b >>> 16)) >>> 0 : d
}

const SOURCES = [undefined, 'mapped', 'compatible', 'nat64', '6to4'] as const

/** The IPv4 address a v6 address is, or embeds (see ClientAddress.v4). */
export function embeddedIpv4(w: Words): { v4: number; source: ClientAddress['v4Source'] } {
  const kind = embeddedKind(w[0], w[1], w[2], w[3])
  return { v4: embeddedWord(kind, w[0], w[1], w[3]), source: SOURCES[kind] }
}

function fromV6(w: Words): ClientAddress {
  const { v4, source } = embeddedIpv4(w)
  // An IPv4-mapped address is only a notation for the IPv4 address: it is looked up as IPv4 alone.
  return { v6: source === 'mapped' ? undefined : w, v4, v4Source: source }
}

/**
 * Parse a client address as Express gives it in `req.ip`: IPv4, IPv6 with an optional zone
 * (`fe80::1%eth0`) or brackets. Canonical forms take a fast path; anything else goes to ipaddr.js.
 * Returns undefined for text that is not an address.
 */
export function parseClientAddress(ip: string | undefined): ClientAddress | undefined {
  if (typeof ip !== 'string' || ip.length === 0 || ip.length > 100) return undefined
  let start = 0
  let end = ip.length
  if (ip.charCodeAt(0) === 91 && ip.charCodeAt(end - 1) === 93) {
    start = 1
    end -= 1
  }
  const zone = ip.indexOf('%', start)
  if (zone >= 0 && zone < end) end = zone
  const colon = ip.indexOf(':', start)
  if (colon >= 0 && colon < end) {
    const w = parseIpv6Fast(ip, start, end)
    if (w) return fromV6(w)
  } else {
    const v4 = parseIpv4Fast(ip, start, end)
    if (v4 >= 0) return { v6: undefined, v4, v4Source: 'ipv4' }
  }
  const bare = ip.slice(start, end)
  if (!ipaddr.isValid(bare)) return undefined
  const parsed = ipaddr.parse(bare)
  const words = wordsFromBytes(parsed.toByteArray())
  if (parsed.kind() === 'ipv4') return { v6: undefined, v4: words[0]!, v4Source: 'ipv4' }
  return fromV6(words as unknown as Words)
}

/** A parsed list entry: a network in one family. */
export interface CidrEntry {
  readonly family: 4 | 6
  /** The network's words (IPv4: the first word only; the rest are 0), host bits cleared. */
  readonly words: Words
  readonly prefix: number
  /** Canonical text: `10.0.0.0/8`, `2001:db8::/32`, and a single host without a prefix. */
  readonly text: string
  /** True when the entry as written had host bits set (`10.0.0.5/8`); they were cleared. */
  readonly hostBitsSet: boolean
}

/** The mask for the first `bits` bits of a 32-bit word (0 <= bits <= 32). */
export function wordMask(bits: number): number {
  if (bits <= 0) return 0
  if (bits >= 32) return 0xffffffff
  return (0xffffffff << (32 - bits)) >>> 0
}

function maskWords(words: readonly number[], prefix: number): number[] {
  return words.map((w, i) => (w & wordMask(prefix - i * 32)) >>> 0)
}

function ipv4Text(w: number): string {
  return `${w >>> 24}.${(w >>> 16) & 255}.${(w >>> 8) & 255}.${w & 255}`
}

function ipv6Text(words: readonly number[]): string {
  const bytes: number[] = []
  for (const w of words) bytes.push(w >>> 24, (w >>> 16) & 255, (w >>> 8) & 255, w & 255)
  return ipaddr.fromByteArray(bytes).toString()
}

/** Text of a client address for events and logs (IPv4-mapped shown as IPv4). */
export function addressText(addr: ClientAddress): string {
  return addr.v6 ? ipv6Text(addr.v6) : ipv4Text(addr.v4)
}

/** Text of a bare IPv4 word. */
export { ipv4Text }

/**
 * Parse one allow/deny entry: an IPv4 or IPv6 address or CIDR, written strictly (dotted-quad
 * decimal IPv4, no zone, decimal prefix in range). An IPv4-mapped IPv6 entry (`::ffff:10.0.0.0/104`)
 * becomes the IPv4 network it names. Returns an error description instead of throwing.
 */
export function parseCidr(text: unknown): CidrEntry | { error: string } {
  if (typeof text !== 'string') return { error: 'is not a string' }
  const slash = text.indexOf('/')
  const addrText = slash >= 0 ? text.slice(0, slash) : text
  const prefixText = slash >= 0 ? text.slice(slash + 1) : undefined
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return { error: 'is not a valid CIDR' }
  let family: 4 | 6
  let words: number[]
  if (addrText.includes(':')) {
    if (addrText.includes('%') || !ipaddr.IPv6.isValid(addrText)) return { error: 'is not a valid CIDR' }
    family = 6
    words = wordsFromBytes(ipaddr.IPv6.parse(addrText).toByteArray())
  } else {
    if (!ipaddr.IPv4.isValidFourPartDecimal(addrText)) return { error: 'is not a valid CIDR' }
    family = 4
    words = [wordsFromBytes(ipaddr.IPv4.parse(addrText).toByteArray())[0]!, 0, 0, 0]
  }
  const width = family === 4 ? 32 : 128
  let prefix = prefixText === undefined ? width : Number(prefixText)
  if (prefix > width) return { error: 'is not a valid CIDR' }
  if (family === 6 && prefix >= 96 && words[0] === 0 && words[1] === 0 && words[2] === 0x0000ffff) {
    family = 4
    words = [words[3]!, 0, 0, 0]
    prefix -= 96
  }
  const masked = maskWords(words, prefix)
  const hostBitsSet = masked.some((w, i) => w !== words[i])
  const full = family === 4 ? 32 : 128
  const base = family === 4 ? ipv4Text(masked[0]!) : ipv6Text(masked)
  return {
    family,
    words: masked as unknown as Words,
    prefix,
    text: prefix === full ? base : `${base}/${prefix}`,
    hostBitsSet,
  }
}

export const isCidrError = (v: CidrEntry | { error: string }): v is { error: string } => 'error' in v
