import ipaddr from 'ipaddr.js'

/**
 * The canonical text form of a client address: IPv4-mapped IPv6 (`::ffff:10.0.0.1`) becomes
 * `10.0.0.1`, IPv6 is compressed and lower-cased. Returns the input unchanged when unparsable.
 */
/** A canonical dotted quad: four decimal octets 0–255 without leading zeros (ipaddr's four-part decimal). */
const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]\\d|\\d)'
const CANONICAL_V4 = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`)
const CANONICAL_MAPPED_V4 = new RegExp(`^::ffff:(${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET})$`)

export function normalizeIp(ip: string | undefined): string {
  if (!ip) return 'unknown'
  // Fast paths for the two forms nearly every request arrives in.
  if (CANONICAL_V4.test(ip)) return ip
  const mapped = CANONICAL_MAPPED_V4.exec(ip)
  if (mapped) return mapped[1]!
  const bare = ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip
  const zoneless = bare.split('%')[0] ?? bare
  if (!ipaddr.isValid(zoneless)) return ip
  const addr = ipaddr.process(zoneless)
  return addr.toString()
}

/** True for 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopback(ip: string | undefined): boolean {
  if (!ip) return false
  const bare = (ip.split('%')[0] ?? ip).replace(/^\[|\]$/g, '')
  if (!ipaddr.isValid(bare)) return false
  return ipaddr.process(bare).range() === 'loopback'
}

const CLIENT_IP = Symbol.for('gatehouse.client-ip')
const REQUEST_ADDRESS = Symbol.for('gatehouse.request-address')

type AddressSource = { ip?: string | undefined; socket?: { remoteAddress?: string | undefined } }

/**
 * `req.ip` as Express resolves it (the socket's address without Express), read once per request
 * and kept on the request: Express computes `req.ip` afresh on every read (it parses
 * X-Forwarded-For through `trust proxy` each time), and several layers ask for it. Unchanged, in
 * whatever notation it arrived (`::ffff:10.0.0.1` stays so); undefined when nothing is known.
 */
export function requestAddress(req: AddressSource): string | undefined {
  const r = req as { [REQUEST_ADDRESS]?: string | null }
  let ip = r[REQUEST_ADDRESS]
  if (ip === undefined) {
    ip = req.ip ?? req.socket?.remoteAddress ?? null
    r[REQUEST_ADDRESS] = ip
  }
  return ip ?? undefined
}

/** The request's client address as `normalizeIp(req.ip)` gives it, worked out once per request. */
export function clientIp(req: AddressSource): string {
  const r = req as { [CLIENT_IP]?: string }
  let ip = r[CLIENT_IP]
  if (ip === undefined) {
    ip = normalizeIp(requestAddress(req))
    r[CLIENT_IP] = ip
  }
  return ip
}

/**
 * The bucket an address's failures count in, so that changing address within what one party
 * holds changes nothing: every loopback address (127/8, ::1, mapped forms) is one bucket, an IPv6
 * address counts by its /64 (one host's usual allocation), an IPv4 address by itself.
 */
export function addressBucket(ip: string | undefined): string {
  if (!ip) return 'unknown'
  const bare = (ip.split('%')[0] ?? ip).replace(/^\[|\]$/g, '')
  if (!ipaddr.isValid(bare)) return 'unknown'
  const addr = ipaddr.process(bare)
  if (addr.range() === 'loopback') return 'loopback'
  if (addr.kind() === 'ipv4') return addr.toString()
  const parts = (addr as ipaddr.IPv6).parts.slice(0, 4)
  return `${parts.map((p) => p.toString(16)).join(':')}::/64`
}

/** Whether `text` is a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a single address, in range. */
export function isCidr(text: string): boolean {
  try {
    if (text.includes('/')) ipaddr.parseCIDR(text)
    else if (!ipaddr.isValid(text)) return false
    return true
  } catch {
    return false
  }
}

/**
 * A test of whether an address is in any of `cidrs` (CIDRs or single addresses; validate them with
 * isCidr first: an invalid one matches nothing). IPv4-mapped IPv6 addresses match as IPv4.
 */
export function cidrMatcher(cidrs: readonly string[]): (ip: string | undefined) => boolean {
  const ranges = cidrs.flatMap((c) => {
    try {
      const [addr, bits] = c.includes('/') ? ipaddr.parseCIDR(c) : [ipaddr.parse(c), -1]
      const range = addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() ? (addr as ipaddr.IPv6).toIPv4Address() : addr
      return [[range, bits === -1 ? (range.kind() === 'ipv4' ? 32 : 128) : range === addr ? bits : bits - 96] as const]
    } catch {
      return []
    }
  })
  return (ip) => {
    if (!ip) return false
    const bare = (ip.split('%')[0] ?? ip).replace(/^\[|\]$/g, '')
    if (!ipaddr.isValid(bare)) return false
    const addr = ipaddr.process(bare)
    return ranges.some(([range, bits]) => range.kind() === addr.kind() && addr.match(range, bits))
  }
}
