import {
  defaultEndpointIds,
  GatehouseConfigError,
  isProviderName,
  isProviderObjectId,
  PROVIDER_OBJECT_ID_FORMAT,
  PROVIDERS,
  suggest,
  upstreamCredentialHeaders,
} from '@gatehouse/core'
import { ProxyErrorCodes } from './errors'
import type { ResolvedProvider, UpstreamCredential } from './options'

/** The per-provider part of the proxy's options, checked by hand: URLs, endpoint ids, header tables. */

const PKG = '@gatehouse/proxy'

export function fail(code: keyof typeof ProxyErrorCodes, message: string): never {
  throw new GatehouseConfigError(ProxyErrorCodes[code], `${PKG}: ${message}`)
}

/** Header names and values a header table may hold: a token name, a value without CR, LF or NUL. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/
const HEADER_VALUE = /^[^\r\n\0]*$/

export function checkHeaders(
  where: string,
  headers: unknown,
  allowedNames?: readonly string[],
): Record<string, string> {
  if (headers === undefined) return {}
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers))
    fail('GH_PROXY_INVALID_OPTIONS', `${where} must be an object of header names to values`)
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers as Record<string, unknown>)) {
    const lower = name.toLowerCase()
    if (!HEADER_NAME.test(lower))
      fail('GH_PROXY_INVALID_OPTIONS', `${where}: ${JSON.stringify(name)} is not a header name`)
    if (allowedNames && !allowedNames.includes(lower)) {
      fail(
        'GH_PROXY_INVALID_OPTIONS',
        `${where}: ${JSON.stringify(name)} is not an account header of this provider (${allowedNames.join(', ') || 'none'})`,
      )
    }
    // Values are named, never quoted: an extra header may hold something secret.
    if (typeof value !== 'string' || !HEADER_VALUE.test(value))
      fail('GH_PROXY_INVALID_OPTIONS', `${where}.${name} must be a string without CR, LF or NUL`)
    out[lower] = value
  }
  return out
}

const PROVIDER_KEYS = ['baseUrl', 'endpoints', 'apiKey', 'accountHeaders', 'relayRateLimitHeaders', 'sharedObjects']
/** The most ids a provider's `sharedObjects` may list. */
export const MAX_SHARED_OBJECTS = 1024

export function resolveProvider(name: string, raw: unknown): ResolvedProvider {
  const where = `providers.${name}`
  if (!isProviderName(name))
    fail(
      'GH_PROXY_INVALID_OPTIONS',
      `providers: unknown provider ${JSON.stringify(name)} (claude, openai, gemini)`,
    )
  if (raw === null || typeof raw !== 'object') fail('GH_PROXY_INVALID_OPTIONS', `${where} must be an object`)
  const p = raw as Record<string, unknown>
  for (const key of Object.keys(p)) {
    if (!PROVIDER_KEYS.includes(key) && p[key] !== undefined) {
      const hint = suggest(key, PROVIDER_KEYS)
      fail(
        'GH_PROXY_UNKNOWN_OPTION',
        `${where}.${key} is not an option${hint ? ` (did you mean ${hint}?)` : ''}`,
      )
    }
  }
  let target: URL
  try {
    target = new URL(String(p.baseUrl))
  } catch {
    fail('GH_PROXY_INVALID_OPTIONS', `${where}.baseUrl must be an http(s) URL`)
  }
  if (target.protocol !== 'https:' && target.protocol !== 'http:')
    fail('GH_PROXY_INVALID_OPTIONS', `${where}.baseUrl must be an http(s) URL`)
  // Userinfo would be sent as Basic auth to the provider and printed by anyone who logs the URL.
  if (target.username || target.password)
    fail('GH_PROXY_INVALID_OPTIONS', `${where}.baseUrl must not hold a user name or password`)
  if (target.search || target.hash)
    fail('GH_PROXY_INVALID_OPTIONS', `${where}.baseUrl must not hold a query or fragment`)
  const known = PROVIDERS[name].endpoints.map((e) => e.id)
  let endpoints = defaultEndpointIds(name)
  if (p.endpoints !== undefined) {
    if (!Array.isArray(p.endpoints) || p.endpoints.length === 0)
      fail('GH_PROXY_INVALID_OPTIONS', `${where}.endpoints must be a non-empty list of endpoint ids`)
    for (const id of p.endpoints) {
      if (typeof id !== 'string' || !known.includes(id)) {
        const hint = typeof id === 'string' ? suggest(id, known) : undefined
        fail(
          'GH_PROXY_UNKNOWN_ENDPOINT',
          `${where}.endpoints: ${JSON.stringify(id)} is not an endpoint of ${name}${hint ? ` (did you mean ${hint}?)` : ''}`,
        )
      }
    }
    endpoints = p.endpoints as string[]
  }
  let staticCredential: UpstreamCredential | undefined
  const account = checkHeaders(`${where}.accountHeaders`, p.accountHeaders, PROVIDERS[name].accountHeaders)
  if (p.apiKey !== undefined) {
    if (typeof p.apiKey !== 'string' || p.apiKey.length < 8 || !HEADER_VALUE.test(p.apiKey))
      fail('GH_PROXY_INVALID_OPTIONS', `${where}.apiKey must be a key of at least 8 characters`)
    staticCredential = {
      headers: Object.freeze({ ...upstreamCredentialHeaders(name, 'api_key', p.apiKey), ...account }),
    }
  }
  if (p.relayRateLimitHeaders !== undefined && typeof p.relayRateLimitHeaders !== 'boolean')
    fail('GH_PROXY_INVALID_OPTIONS', `${where}.relayRateLimitHeaders must be true or false (got ${JSON.stringify(p.relayRateLimitHeaders)})`)
  const shared = p.sharedObjects
  if (shared !== undefined) {
    if (!Array.isArray(shared) || shared.length === 0 || shared.length > MAX_SHARED_OBJECTS)
      fail('GH_PROXY_INVALID_OPTIONS', `${where}.sharedObjects must be a list of 1 to ${MAX_SHARED_OBJECTS} provider object ids`)
    for (const id of shared as unknown[]) {
      if (typeof id !== 'string' || !isProviderObjectId(id))
        fail('GH_PROXY_INVALID_OPTIONS', `${where}.sharedObjects: ${JSON.stringify(typeof id === 'string' ? id.slice(0, 80) : id)} is not a provider object id (${PROVIDER_OBJECT_ID_FORMAT})`)
    }
  }
  // Keep the base path without its trailing slash: `/openai/` + `/v1/…` must not become `//v1`.
  target.pathname = target.pathname.replace(/\/+$/, '')
  return { name, target, allowed: new Set(endpoints), staticCredential, relayRateLimits: p.relayRateLimitHeaders === true, sharedObjects: new Set((shared as string[] | undefined) ?? []) }
}

/** The secret values in a credential's headers: each value, and the token of an auth scheme. */
export function secretsOf(headers: Readonly<Record<string, string>>): string[] {
  const out: string[] = []
  for (const name in headers) {
    if (name === 'anthropic-beta') continue
    const value = headers[name]!
    out.push(value)
    const space = value.indexOf(' ')
    if (space > 0 && space < 16) out.push(value.slice(space + 1))
  }
  return out
}
