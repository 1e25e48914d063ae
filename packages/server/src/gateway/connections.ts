import { readFileSync } from 'node:fs'
import type net from 'node:net'
import { addressBucket, cidrMatcher, emitSecurityEvent, normalizeIp, type SecurityEventHandler } from '@gatehouse/core'
import type { GatehouseConfig } from '../config/types'
import { trustedProxyAddresses } from '../config/trust-proxy'
import { ServerErrorCodes } from '../errors'

/**
 * Open client connections are a shared resource: each holds a file descriptor (and, while a request
 * is in flight, an upstream one), and before this cap one address holding idle sockets, with no
 * key and without sending a byte, could take every descriptor and leave every tenant unanswered.
 * Checked on the TCP connection, before TLS or HTTP parse anything. Written here rather than taken
 * from a library: the per-request limiters (express-rate-limit) never see a connection that sends
 * no request, and Node's `server.maxConnections` has no per-address form.
 */
export interface ConnectionLimits {
  /** Open client connections in all. */
  readonly max: number
  /** Open client connections from one address (an IPv6 address counts by its /64). */
  readonly perIp: number
}

/** Descriptors kept back from the default for upstream sockets, files and the metrics listener. */
export const RESERVED_FDS = 256

/**
 * The soft limit on open files of this process, from `/proc/self/limits` (`limitsText`, a parameter
 * for tests): a number, Infinity when unlimited, undefined where it cannot be read.
 */
export function openFileLimit(limitsText?: string): number | undefined {
  let text = limitsText
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8')
    } catch {
      return undefined
    }
  }
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(text)
  if (!m) return undefined
  return m[1] === 'unlimited' ? Infinity : Number(m[1])
}

/**
 * The default total: half of the descriptors left after the reserve (each client connection may
 * hold an upstream one), between 64 and 16384; 4096 where the limit cannot be read.
 */
export function defaultMaxConnections(limitsText?: string): number {
  const limit = openFileLimit(limitsText)
  if (limit === undefined) return 4096
  return Math.min(16384, Math.max(64, Math.floor((limit - RESERVED_FDS) / 2)))
}

function connectionLimitsOf(config: GatehouseConfig): ConnectionLimits {
  const c = config.server.security.connections
  return { max: typeof c?.max === 'number' ? c.max : defaultMaxConnections(), perIp: c?.per_ip ?? 256 }
}

/** The count an address belongs to: IPv4 by itself, IPv6 by its /64, each loopback address by itself. */
function bucketOf(ip: string): string {
  const b = addressBucket(ip)
  return b === 'loopback' ? normalizeIp(ip) : b
}

/**
 * Apply the limits to a listener. A connection over either is closed at once, and a
 * `security_violation` event (`connection_limit`, with the scope and the limit) names its address;
 * the audit log folds a flood of them into one line a window. Addresses in
 * `server.security.never_block` and the trusted proxies of `server.trust_proxy` (a load balancer
 * carries many clients on its connections) are exempt from the per-address limit, not the total.
 */
export function limitConnections(server: net.Server, config: GatehouseConfig, emit: SecurityEventHandler): ConnectionLimits {
  const limits = connectionLimitsOf(config)
  const exempt = cidrMatcher([...config.server.security.never_block, ...trustedProxyAddresses(config.server.trust_proxy)])
  const refused = (ip: string | undefined, scope: 'ip' | 'total', limit: number): void =>
    emitSecurityEvent(emit, {
      event_type: 'security_violation',
      ip: normalizeIp(ip),
      result: 'connection_limit',
      details: { code: ServerErrorCodes.GH_SERVER_CONNECTION_LIMIT, scope, limit },
    })
  // Node closes a connection over maxConnections itself, before 'connection', and says so in 'drop'.
  server.maxConnections = limits.max
  server.on('drop', (data?: { remoteAddress?: string }) => refused(data?.remoteAddress, 'total', limits.max))
  const open = new Map<string, number>()
  server.on('connection', (socket: net.Socket) => {
    const ip = socket.remoteAddress
    if (ip === undefined || exempt(ip)) return // undefined: the socket is closed already
    const bucket = bucketOf(ip)
    const n = open.get(bucket) ?? 0
    if (n >= limits.perIp) {
      socket.destroy()
      refused(ip, 'ip', limits.perIp)
      return
    }
    open.set(bucket, n + 1)
    socket.once('close', () => {
      const left = (open.get(bucket) ?? 1) - 1
      if (left <= 0) open.delete(bucket)
      else open.set(bucket, left)
    })
  })
  return limits
}
