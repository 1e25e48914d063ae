import ipaddr from 'ipaddr.js'

/**
 * The canonical text form of a client address: IPv4-mapped IPv6 (`::ffff:10.0.0.1`) becomes
 * `10.0.0.1`, IPv6 is compressed and lower-cased. Returns the input unchanged when unparsable.
 */
const DOTTED_V4 = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/

export function normalizeIp(ip: string | undefined): string {
  if (!ip) return 'unknown'
  // Fast paths for the two forms nearly every request arrives in.
  if (DOTTED_V4.test(ip) && ipaddr.IPv4.isValidFourPartDecimal(ip)) return ip
  if (ip.startsWith('::ffff:') && DOTTED_V4.test(ip.slice(7)) && ipaddr.IPv4.isValidFourPartDecimal(ip.slice(7))) return ip.slice(7)
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
