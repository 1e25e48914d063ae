import { isIP } from 'node:net'
import { isLoopback } from './ip'

/**
 * DNS rebinding: a web page on `attacker.example` can make the operator's browser resolve that
 * name to 127.0.0.1 and then talk to a loopback listener as a same-origin page. The browser still
 * sends `Host: attacker.example`, so a loopback listener that only answers Hosts it can be reached
 * by (an IP literal, `localhost`, or a name the operator configured) cannot be reached that way.
 */
export interface HostGuardOptions {
  /** Extra host names this listener is reached by (lower case, no port), such as a container name. */
  allowedHosts?: readonly string[]
}

/** Lower-cased host of a Host header value without its port, or undefined when malformed. */
export function hostOf(header: string): string | undefined {
  const value = header.trim().toLowerCase()
  if (value === '') return undefined
  if (value.startsWith('[')) {
    const end = value.indexOf(']')
    if (end === -1) return undefined
    const rest = value.slice(end + 1)
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return undefined
    const ip = value.slice(1, end)
    return isIP(ip) === 6 ? ip : undefined
  }
  const colon = value.indexOf(':')
  const host = colon === -1 ? value : value.slice(0, colon)
  if (colon !== -1 && !/^\d{1,5}$/.test(value.slice(colon + 1))) return undefined
  // A host name as RFC 1123 writes it (a trailing dot is refused: browsers keep it in Host).
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(host)) return undefined
  return host
}

/**
 * A check for the Host header of a request to a loopback listener: true for an IP literal,
 * `localhost`, `*.localhost` (all resolve to loopback without DNS) or a configured name, each with
 * an optional port; false for anything else, a missing Host included.
 */
export function hostGuard(options: HostGuardOptions = {}): (hostHeader: string | undefined) => boolean {
  const allowed = new Set((options.allowedHosts ?? []).map((h) => h.toLowerCase()))
  return (header) => {
    if (header === undefined) return false
    const host = hostOf(header)
    if (host === undefined) return false
    if (isIP(host) !== 0) return true
    if (host === 'localhost' || host.endsWith('.localhost')) return true
    return allowed.has(host)
  }
}

/** Whether a listen address is loopback (127.0.0.0/8, ::1, localhost): the guard applies to those. */
export function isLoopbackBind(host: string): boolean {
  return host === 'localhost' || isLoopback(host)
}
