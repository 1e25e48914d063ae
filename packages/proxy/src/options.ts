import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  createMasker,
  createOptionsResolver,
  defaultEndpointIds,
  GatehouseConfigError,
  isLogger,
  isProviderName,
  noopLogger,
  parseDuration,
  PROVIDERS,
  suggest,
  upstreamCredentialHeaders,
  type Logger,
  type Masker,
  type ProviderName,
  type SecurityEventHandler,
} from '@gatehouse/core'
import { ProxyErrorCodes } from './errors'

const PKG = '@gatehouse/proxy'

/** The credential a request goes upstream with. `headers` holds the secret. */
export interface UpstreamCredential {
  /** Header name (lower case) → value: what the provider authenticates. */
  readonly headers: Readonly<Record<string, string>>
  /** Called once with the upstream status (bookkeeping; never takes a credential out of service). */
  report?(status: number): void
  /** Called when the provider's answer proves the credential itself is bad (its invalid-key answer on a model call). */
  reject?(reason: string): void
}

export interface ProxyProviderOptions {
  /** Where the provider is: `https://api.openai.com`; a path (`https://host/openai`) is kept and the request path joined to it. */
  baseUrl: string
  /** Endpoint ids (provider registry) this provider allows. @default the provider's inference endpoints */
  endpoints?: readonly string[] | undefined
  /** A static API key, used when `credential` gives none. */
  apiKey?: string | undefined
  /** Account-selecting headers sent with the static key (`openai-organization`, `openai-project`, `x-goog-user-project`). */
  accountHeaders?: Readonly<Record<string, string>> | undefined
  /**
   * Relay the provider's account-wide rate-limit headers (`x-ratelimit-*`, `anthropic-ratelimit-*`).
   * They describe the shared upstream account, so every client's use of it: leave off when the
   * gateway serves more than one tenant. @default false
   */
  relayRateLimitHeaders?: boolean | undefined
}

export interface ProxyOptions {
  /** The providers this proxy serves, by name. */
  providers: Partial<Record<ProviderName, ProxyProviderOptions>>
  /** The credential for this request (for example the credential vault's choice); falls back to the provider's `apiKey`. */
  credential?: ((req: IncomingMessage, res: ServerResponse) => UpstreamCredential | undefined) | undefined
  /** The request body to send, already read and validated (request-guard's); otherwise the request stream is forwarded. */
  body?: ((req: IncomingMessage, res: ServerResponse) => Buffer | undefined) | undefined
  /** Headers added to every upstream request (a device fingerprint); never a client's. */
  extraHeaders?: Readonly<Record<string, string>> | undefined
  /** The endpoint ids this request's client may call, when its key narrows or widens the provider's set. */
  endpointsFor?: ((req: IncomingMessage, res: ServerResponse) => readonly string[] | undefined) | undefined
  /** Upstream timeouts: milliseconds or duration strings (`10s`). */
  timeouts?: { connect?: number | string; firstByte?: number | string; idle?: number | string } | undefined
  /** Literal secrets to mask in anything relayed, besides the injected credential (which is always masked). */
  knownSecrets?: readonly string[] | undefined
  /** Run admitted requests and first writes in per-turn batches (see docs/performance.md). @default false */
  batching?: boolean | undefined
  /**
   * Ask OpenAI for usage on every stream (`stream_options.include_usage: true` added to chat and
   * completions streams that lack it), so a stream is charged what it used; the usage-only event
   * the client did not ask for is metered and not relayed. @default true
   */
  streamUsage?: boolean | undefined
  onEvent?: SecurityEventHandler | undefined
  logger?: Logger | undefined
}

export interface ResolvedProvider {
  readonly name: ProviderName
  readonly target: URL
  readonly allowed: ReadonlySet<string>
  readonly staticCredential: UpstreamCredential | undefined
  readonly relayRateLimits: boolean
}

export interface ProxyConfig {
  readonly providers: ReadonlyMap<ProviderName, ResolvedProvider>
  readonly credential: ProxyOptions['credential']
  readonly body: ProxyOptions['body']
  readonly extraHeaders: Readonly<Record<string, string>>
  readonly endpointsFor: ProxyOptions['endpointsFor']
  readonly timeouts: { readonly connect: number; readonly firstByte: number; readonly idle: number }
  readonly masker: Masker
  readonly batching: boolean
  readonly streamUsage: boolean
  readonly onEvent: SecurityEventHandler | undefined
  readonly logger: Logger
}

const duration = { type: ['number', 'string'] } as const
const HAND_CHECKED = [
  'providers',
  'credential',
  'body',
  'endpointsFor',
  'onEvent',
  'logger',
  'extraHeaders',
] as const

/** JSON schema of the proxy's data-shaped options (the server composes its config schema from it). */
export const proxyOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    timeouts: {
      type: 'object',
      additionalProperties: false,
      properties: { connect: duration, firstByte: duration, idle: duration },
    },
    knownSecrets: { type: 'array', items: { type: 'string' } },
    batching: { type: 'boolean' },
    streamUsage: { type: 'boolean' },
  },
} as const

const resolveData = createOptionsResolver<Omit<ProxyOptions, (typeof HAND_CHECKED)[number]>>({
  pkg: PKG,
  codePrefix: 'GH_PROXY',
  schema: proxyOptionsSchema,
  handChecked: HAND_CHECKED,
  secretKeys: ['knownSecrets'],
})

function fail(code: keyof typeof ProxyErrorCodes, message: string): never {
  throw new GatehouseConfigError(ProxyErrorCodes[code], `${PKG}: ${message}`)
}

/** Header names and values a header table may hold: a token name, a value without CR, LF or NUL. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/
const HEADER_VALUE = /^[^\r\n\0]*$/

function checkHeaders(
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

const PROVIDER_KEYS = ['baseUrl', 'endpoints', 'apiKey', 'accountHeaders', 'relayRateLimitHeaders']

function resolveProvider(name: string, raw: unknown): ResolvedProvider {
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
  // Keep the base path without its trailing slash: `/openai/` + `/v1/…` must not become `//v1`.
  target.pathname = target.pathname.replace(/\/+$/, '')
  return { name, target, allowed: new Set(endpoints), staticCredential, relayRateLimits: p.relayRateLimitHeaders === true }
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

export function resolveProxyConfig(options: ProxyOptions): ProxyConfig {
  const o = resolveData(options)
  const raw = options as unknown as Record<string, unknown>
  const providersRaw = raw.providers
  if (
    providersRaw === null ||
    typeof providersRaw !== 'object' ||
    Array.isArray(providersRaw) ||
    Object.keys(providersRaw).length === 0
  ) {
    fail('GH_PROXY_INVALID_OPTIONS', 'providers must name at least one provider: { openai: { baseUrl } }')
  }
  const providers = new Map<ProviderName, ResolvedProvider>()
  for (const [name, p] of Object.entries(providersRaw as Record<string, unknown>)) {
    if (p === undefined) continue
    const resolved = resolveProvider(name, p)
    providers.set(resolved.name, resolved)
  }
  for (const fn of ['credential', 'body', 'endpointsFor', 'onEvent'] as const) {
    if (raw[fn] !== undefined && typeof raw[fn] !== 'function')
      fail('GH_PROXY_INVALID_OPTIONS', `${fn} must be a function`)
  }
  if (raw.logger !== undefined && !isLogger(raw.logger))
    fail('GH_PROXY_INVALID_OPTIONS', 'logger must have error, warn, info and debug methods')
  const extraHeaders = checkHeaders('extraHeaders', raw.extraHeaders)
  const ms = (v: number | string | undefined, name: string, dflt: number): number => {
    if (v === undefined) return dflt
    const n = typeof v === 'number' ? v : parseDuration(v)
    if (!Number.isFinite(n) || n <= 0)
      fail(
        'GH_PROXY_INVALID_OPTIONS',
        `timeouts.${name} must be a positive duration (got ${JSON.stringify(v)})`,
      )
    return n
  }
  const knownSecrets = [...(o.knownSecrets ?? [])]
  for (const p of providers.values()) knownSecrets.push(...secretsOf(p.staticCredential?.headers ?? {}))
  return {
    providers,
    credential: options.credential,
    body: options.body,
    extraHeaders,
    endpointsFor: options.endpointsFor,
    timeouts: {
      connect: ms(o.timeouts?.connect, 'connect', 10_000),
      firstByte: ms(o.timeouts?.firstByte, 'firstByte', 300_000),
      idle: ms(o.timeouts?.idle, 'idle', 120_000),
    },
    masker: createMasker({ knownSecrets }),
    batching: o.batching ?? false,
    streamUsage: o.streamUsage ?? true,
    onEvent: options.onEvent,
    logger: (raw.logger as Logger | undefined) ?? noopLogger,
  }
}
