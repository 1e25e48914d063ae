import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import {
  COMMON_REQUEST_HEADER_PREFIXES,
  COMMON_REQUEST_HEADERS,
  COMMON_RESPONSE_HEADERS,
  PROVIDERS,
  type ProviderName,
} from '@gatehouse/core'
import { tenantScoped } from './tenant'

/**
 * Header policy, both ways, by allowlist (provider registry in core). Whatever a client sends
 * (`Expect`, `Trailer`, `TE`, `Upgrade`, names listed in `Connection`, forwarding and account
 * headers) is not copied unless it is listed; whatever an upstream sends back is not relayed unless
 * it is listed.
 */
export interface HeaderPolicy {
  /**
   * The headers of the upstream request, computed in one place from the client's. `tenant` (the
   * client key's id, when one authenticated) binds the client's `Idempotency-Key` to that key: the
   * provider keeps idempotency keys per account, which every tenant shares (see tenant.ts).
   */
  outgoing(
    clientHeaders: IncomingHttpHeaders,
    credential: Readonly<Record<string, string>>,
    extra: Readonly<Record<string, string>>,
    bodyLength: number | undefined,
    tenant?: string,
  ): OutgoingHttpHeaders
  /** May this upstream response header reach the client? `name` is lower case. */
  relays(name: string): boolean
}

/** The names a `Connection` header marks as hop-by-hop for this message (RFC 9110 §7.6.1). */
function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined
  const set = new Set<string>()
  for (const part of (Array.isArray(value) ? value.join(',') : value).split(',')) {
    const token = part.trim().toLowerCase()
    if (token) set.add(token)
  }
  return set
}

/**
 * The header policy of one provider. `relayRateLimits` lets the provider's account-wide rate-limit
 * families (`x-ratelimit-*`, `anthropic-ratelimit-*`) reach the client: off unless the operator
 * turns it on, because they show every tenant's use of the shared upstream account.
 */
export function headerPolicy(provider: ProviderName, relayRateLimits = false): HeaderPolicy {
  const spec = PROVIDERS[provider]
  const requestNames: ReadonlySet<string> = new Set([...COMMON_REQUEST_HEADERS, ...spec.requestHeaders])
  const requestPrefixes = [...COMMON_REQUEST_HEADER_PREFIXES]
  const responseNames: ReadonlySet<string> = new Set([...COMMON_RESPONSE_HEADERS, ...spec.responseHeaders])
  const responsePrefixes = relayRateLimits ? spec.rateLimitHeaderPrefixes : []
  const account: ReadonlySet<string> = new Set(spec.accountHeaders)

  const allowedRequest = (name: string): boolean => {
    if (requestNames.has(name)) return true
    for (const p of requestPrefixes) if (name.startsWith(p)) return true
    return false
  }

  return {
    outgoing(clientHeaders, credential, extra, bodyLength, tenant) {
      const hop = connectionTokens(clientHeaders.connection)
      const out: OutgoingHttpHeaders = {}
      for (const name in clientHeaders) {
        if (!allowedRequest(name) || hop?.has(name)) continue
        const value = clientHeaders[name]
        if (value !== undefined) out[name] = value
      }
      const idempotency = out['idempotency-key']
      if (tenant !== undefined && idempotency !== undefined) out['idempotency-key'] = tenantScoped(tenant, String(idempotency))
      // The gateway's own: the meter reads plain bodies, and nothing the client chose about framing.
      out['accept-encoding'] = 'identity'
      for (const name in extra) if (!account.has(name)) out[name] = extra[name]!
      for (const name in credential) {
        // The Anthropic OAuth beta flag joins the client's beta list rather than replacing it.
        if (name === 'anthropic-beta' && typeof out[name] === 'string')
          out[name] = mergeList(out[name] as string, credential[name]!)
        else out[name] = credential[name]!
      }
      if (bodyLength !== undefined) out['content-length'] = String(bodyLength)
      return out
    },
    relays(name) {
      if (responseNames.has(name)) return true
      for (const p of responsePrefixes) if (name.startsWith(p)) return true
      return false
    },
  }
}

function mergeList(client: string, ours: string): string {
  const list = client
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  if (!list.includes(ours)) list.push(ours)
  return list.join(',')
}
