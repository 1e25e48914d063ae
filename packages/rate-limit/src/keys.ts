import { isIPv4, isIPv6 } from 'node:net'
import type { Request, Response } from 'express'
import {
  requestAddress,
  gatehouseLocals,
  isProviderName,
  detectProvider,
  resolveProviderRoute,
  type ProviderName,
} from '@gatehouse/core'

/** The eight 16-bit groups of a valid IPv6 address (an embedded dotted IPv4 tail included). */
function ipv6Groups(addr: string): number[] {
  let text = addr
  let tail: number[] = []
  const lastColon = text.lastIndexOf(':')
  if (text.includes('.', lastColon)) {
    const v4 = text
      .slice(lastColon + 1)
      .split('.')
      .map(Number)
    tail = [((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0)]
    text = `${text.slice(0, lastColon + 1)}${text[lastColon - 1] === ':' ? '' : '0'}`
    if (text.endsWith(':0')) text = text.slice(0, -2) || ':'
  }
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)))
  const gap = text.indexOf('::')
  const head = gap === -1 ? parse(text) : parse(text.slice(0, gap))
  const rest = gap === -1 ? [] : parse(text.slice(gap + 2))
  const fill = 8 - tail.length - head.length - rest.length
  return [...head, ...Array<number>(Math.max(0, fill)).fill(0), ...rest, ...tail].slice(0, 8)
}

/**
 * The bucket key of a client address: IPv4 as is (IPv4-mapped IPv6 as its IPv4 address), IPv6 as
 * its `/ipv6Subnet` network in RFC 5952 form (`2001:db8:0:100::/56`, as express-rate-limit's ipKeyGenerator writes it), so one subscriber's many addresses share a
 * bucket. An address Express could not tell gives `unknown`; anything that is not an address gives
 * `invalid`. Pure string and integer work: it runs on every request, floods included.
 */
export function ipKey(ip: string | undefined, ipv6Subnet: number | false = 56): string {
  if (!ip) return 'unknown'
  let addr = ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip
  const zone = addr.indexOf('%')
  if (zone !== -1) addr = addr.slice(0, zone)
  if (isIPv4(addr)) return addr
  // Not an address (a junk X-Forwarded-For entry behind a trusted proxy): one shared bucket, so
  // made-up values can neither mint fresh buckets nor put client text into store keys.
  if (!isIPv6(addr)) return 'invalid'
  const groups = ipv6Groups(addr.toLowerCase())
  const zeroHead = groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0
  // IPv4-mapped (::ffff:a.b.c.d) and the deprecated IPv4-compatible dotted form (::a.b.c.d) are IPv4 clients.
  if (zeroHead && (groups[5] === 0xffff || (groups[5] === 0 && addr.includes('.')))) {
    const [hi = 0, lo = 0] = groups.slice(6)
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`
  }
  const bits = ipv6Subnet === false ? 128 : ipv6Subnet
  const masked = groups.map((g, i) => {
    const keep = Math.min(16, Math.max(0, bits - i * 16))
    return keep === 16 ? g : keep === 0 ? 0 : g & (0xffff << (16 - keep)) & 0xffff
  })
  return `${compress(masked)}/${bits}`
}

/** RFC 5952 text: lower-case hex, the longest run of two or more zero groups (leftmost on a tie) as `::`. */
function compress(groups: number[]): string {
  let bestStart = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) {
      bestStart = i
      bestLen = j - i
    }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (bestStart === -1) return hex.join(':')
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`
}

/** The provider a request is for: the one an earlier layer recorded, else the one its path routes to. */
export function requestProvider(req: Request, res: Response): string | undefined {
  const recorded = gatehouseLocals(res).provider
  if (typeof recorded === 'string' && recorded !== '') return recorded
  return resolveProviderRoute(req.path)?.provider
}

/** Whose error shape a refusal takes. */
export function errorProvider(req: Request, res: Response): ProviderName {
  const recorded = gatehouseLocals(res).provider
  return isProviderName(recorded) ? recorded : detectProvider(req)
}

/** `req.ip` as it arrived, read once per request (core's requestAddress); undefined when Express could not tell. */
export const requestIp = (req: Request): string | undefined => requestAddress(req)

/** The bucket key for the per-key scope: the client key id, or the address when no key was authenticated. */
export function clientKey(req: Request, res: Response, ipv6Subnet: number | false): string {
  const id = gatehouseLocals(res).clientKeyId
  return typeof id === 'string' && id !== '' ? `id:${id}` : `ip:${ipKey(requestIp(req), ipv6Subnet)}`
}

/**
 * Warns once per limiter about the two `trust proxy` mistakes that break per-address limits:
 * `true` (every client picks its own address with X-Forwarded-For) and an X-Forwarded-For header
 * arriving while nothing is trusted (every client behind that proxy shares one bucket).
 */
export function proxyChecker(
  warn: (message: string, meta: Record<string, unknown>) => void,
): (req: Request) => void {
  let permissive = false
  let unexpected = false
  return (req) => {
    if (permissive && unexpected) return
    const trust: unknown = req.app.get('trust proxy')
    if (!permissive && trust === true) {
      permissive = true
      warn(
        "@gatehouse/rate-limit: Express 'trust proxy' is true, so any client can choose its address with X-Forwarded-For and escape per-address limits; set it to your proxy's hop count or addresses",
        { code: 'GH_RL_PERMISSIVE_TRUST_PROXY' },
      )
    }
    if (
      !unexpected &&
      (trust === false || trust === undefined) &&
      req.headers['x-forwarded-for'] !== undefined
    ) {
      unexpected = true
      warn(
        "@gatehouse/rate-limit: a request carried X-Forwarded-For but Express 'trust proxy' is off, so every client behind that proxy shares one address bucket; if a proxy you run sits in front, set 'trust proxy'",
        { code: 'GH_RL_UNEXPECTED_X_FORWARDED_FOR' },
      )
    }
  }
}
