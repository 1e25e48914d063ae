import { isIP } from 'node:net'
import { CoreErrorCodes, GatehouseConfigError } from './errors'
import { isLoopback } from './ip'

/*
 * DNS rebinding: a web page on `attacker.example` can make the operator's browser resolve that
 * name to 127.0.0.1 and then talk to a loopback listener as a same-origin page. The browser still
 * sends `Host: attacker.example`, so a loopback listener that only answers Hosts it can be reached
 * by (an IP literal, `localhost`, or a name the operator configured) cannot be reached that way.
 *
 * A trailing dot (`localhost.`, `gatehouse.internal.`) is refused, in the Host and in the
 * configured names alike: browsers send it as typed, nobody reaches a gateway that way on purpose,
 * and refusing keeps one spelling per name.
 *
 * Only a listener bound to loopback is guarded (see `isLoopbackBind`). A listener on 0.0.0.0 or ::
 * answers on loopback too, so a rebinding page can reach it as well; but it is meant to be reached
 * by names this code cannot know, and which Hosts it answers is the operator's business (a proxy
 * in front that checks them).
 */

/**
 * A host name as RFC 1123 writes it: dot-separated labels of letters, digits and inner hyphens, no
 * trailing dot. A string so that JSON schemas (`pattern`) and the guard share one rule.
 */
export const HOST_NAME_PATTERN =
  '^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$'
const HOST_NAME = new RegExp(HOST_NAME_PATTERN)
const PORT = /^\d{1,5}$/

export interface HostGuardOptions {
  /**
   * Extra host names this listener is reached by, such as a container name; matched exactly and
   * case-insensitively, with any port. Each must match `HOST_NAME_PATTERN` (no port, no scheme, no
   * trailing dot). @default []
   */
  allowedHosts?: readonly string[]
}

const portOk = (port: string): boolean => PORT.test(port) && Number(port) <= 65535

/**
 * The lower-cased host of a Host header value, without its port (`[::1]:8317` → `::1`), or
 * undefined when the value is not `host[:port]`: empty, a bad port, an unclosed bracket, an IPv6
 * zone, a trailing dot, a space. The value is taken as Node hands it over (already trimmed).
 */
export function hostOf(header: string): string | undefined {
  const value = header.toLowerCase()
  if (value.startsWith('[')) {
    const end = value.indexOf(']')
    if (end === -1) return undefined
    const rest = value.slice(end + 1)
    if (rest !== '' && !(rest.startsWith(':') && portOk(rest.slice(1)))) return undefined
    const ip = value.slice(1, end)
    // isIP accepts a zone (`fe80::1%eth0`); a Host never carries one.
    return !ip.includes('%') && isIP(ip) === 6 ? ip : undefined
  }
  const colon = value.indexOf(':')
  const host = colon === -1 ? value : value.slice(0, colon)
  if (colon !== -1 && !portOk(value.slice(colon + 1))) return undefined
  return HOST_NAME.test(host) ? host : undefined
}

/**
 * A check for the Host header of a request to a loopback listener, built once per listener: true
 * for an IP literal (IPv4, or bracketed IPv6), `localhost`, `*.localhost` (both resolve to loopback
 * without DNS) or one of `allowedHosts`, each with an optional port; false for anything else, a
 * missing or empty Host included. Throws GH_CORE_INVALID_OPTIONS for an allowed name that could
 * never match.
 */
export function hostGuard(options: HostGuardOptions = {}): (hostHeader: string | undefined) => boolean {
  const names = options.allowedHosts ?? []
  names.forEach((name, i) => {
    if (typeof name !== 'string' || !HOST_NAME.test(name)) {
      throw new GatehouseConfigError(
        CoreErrorCodes.GH_CORE_INVALID_OPTIONS,
        `@gatehouse/core: allowedHosts[${i}] must be a host name without port or trailing dot (${JSON.stringify(name)})`,
      )
    }
  })
  const allowed = new Set(names.map((h) => h.toLowerCase()))
  return function hostAllowed(header) {
    if (header === undefined) return false
    const host = hostOf(header)
    if (host === undefined) return false
    if (host === 'localhost' || host.endsWith('.localhost') || allowed.has(host)) return true
    return isIP(host) !== 0
  }
}

/**
 * Whether a listen address is loopback (127.0.0.0/8, ::1 and its IPv4-mapped forms, `localhost`):
 * the listeners `hostGuard` applies to. 0.0.0.0 and :: are not (see the note at the top).
 */
export function isLoopbackBind(host: string): boolean {
  return host.toLowerCase() === 'localhost' || isLoopback(host)
}
