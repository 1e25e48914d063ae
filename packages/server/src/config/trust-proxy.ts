import ipaddr from 'ipaddr.js'
import { isCidr } from '@gatehouse/core'
import type { GatehouseConfig } from './types'

type TrustProxy = GatehouseConfig['server']['trust_proxy']

/** The names Express accepts in `trust proxy` besides addresses and CIDRs, and the ranges each names. */
const TRUST_PROXY_NAMES: Readonly<Record<string, readonly string[]>> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
}

/** The entries of a list form (a YAML list, or a comma-separated string), trimmed; none for a boolean or hop count. */
const entriesOf = (trust: unknown): string[] =>
  (Array.isArray(trust) ? (trust as string[]) : typeof trust === 'string' ? trust.split(',') : []).map((e) => e.trim())

/** The addresses and CIDRs `server.trust_proxy` names, names expanded (alerts never block them). */
export function trustedProxyAddresses(trust: TrustProxy): string[] {
  return entriesOf(trust).flatMap((e) => TRUST_PROXY_NAMES[e] ?? (e === '' ? [] : [e]))
}

const MESSAGE = 'must be false, a hop count (1), or a list of proxy addresses or CIDRs'

/**
 * `server.trust_proxy`, read without the schema's type coercion, which would turn the hop count `1`
 * into `true` (trust every hop) and change its meaning. A string of digits (as an environment
 * variable gives it) is a hop count; `"true"`/`"false"` are the booleans; anything else is a list of
 * proxies, comma-separated or as YAML list. Returns the value, or the error line naming the key.
 */
export function readTrustProxy(value: unknown): { value: TrustProxy } | { error: string } {
  const key = 'server.trust_proxy'
  if (typeof value === 'boolean') return { value }
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 && value <= 64 ? { value } : { error: `${key}: ${MESSAGE} (got ${value})` }
  if (typeof value === 'string') {
    const s = value.trim()
    if (s === 'true' || s === 'false') return { value: s === 'true' }
    if (/^\d{1,2}$/.test(s)) return { value: Number(s) }
    return listErrors(key, value)
  }
  if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string')) return listErrors(key, value as string[])
  return { error: `${key}: ${MESSAGE}` }
}

function listErrors(key: string, value: string | string[]): { value: TrustProxy } | { error: string } {
  for (const [i, e] of entriesOf(value).entries()) {
    const at = Array.isArray(value) ? `${key}.${i}` : key
    if (Object.hasOwn(TRUST_PROXY_NAMES, e)) continue
    if (!isCidr(e)) return { error: `${at}: ${JSON.stringify(e)} is not an address, a CIDR or one of loopback, linklocal, uniquelocal` }
    if (trustsEveryAddress(e)) {
      return { error: `${at}: ${JSON.stringify(e)} trusts every address, so any client can forge its address with X-Forwarded-For; list your proxies' own addresses` }
    }
  }
  return { value }
}

/** A /0, or the IPv4-mapped range of every IPv4 address (`::ffff:0:0/96`). */
function trustsEveryAddress(entry: string): boolean {
  if (!entry.includes('/')) return false
  const [addr, bits] = ipaddr.parseCIDR(entry)
  if (bits === 0) return true
  return addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits <= 96
}
