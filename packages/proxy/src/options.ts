import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  createMasker,
  createOptionsResolver,
  isLogger,
  noopLogger,
  parseDuration,
  type Logger,
  type Masker,
  type ProviderName,
  type SecurityEventHandler,
} from '@gatehouse/core'
import { memoryObjectOwners, type ObjectOwners } from './owners'
import { checkHeaders, fail, resolveProvider, secretsOf } from './provider-options'

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
  /**
   * Provider objects (ids) every client key may refer to, besides those it made through the proxy:
   * the operator's own, made outside it (a vector store of shared documents, a cached content).
   * Each key may be granted more (`res.locals.gatehouse.clientKeyObjects`). @default none
   */
  sharedObjects?: readonly string[] | undefined
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
  /**
   * Bind the end-user identifiers and cache key of each request to its client key
   * (`res.locals.gatehouse.clientKeyId`): OpenAI's `safety_identifier`, `user` and
   * `prompt_cache_key`, Anthropic's `metadata.user_id`; a request naming none gets its key's own.
   * The provider then acts on one tenant's abuse against that tenant's identifier, not against the
   * account every tenant shares (see tenant.ts). @default true
   */
  tenantEndUsers?: boolean | undefined
  /**
   * Who made each provider object (by client key, `res.locals.gatehouse.clientKeyId`): a client key
   * may refer only to the responses, files and containers it made; another's, an unknown one or an
   * object never made through the gateway is answered 404 and never forwarded (references.ts).
   * `false` turns the check off. @default memoryObjectOwners() (cluster mode: redisObjectOwners)
   */
  objectOwners?: ObjectOwners | false | undefined
  onEvent?: SecurityEventHandler | undefined
  logger?: Logger | undefined
}

export interface ResolvedProvider {
  readonly name: ProviderName
  readonly target: URL
  readonly allowed: ReadonlySet<string>
  readonly staticCredential: UpstreamCredential | undefined
  readonly relayRateLimits: boolean
  readonly sharedObjects: ReadonlySet<string>
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
  readonly tenantEndUsers: boolean
  readonly objectOwners: ObjectOwners | undefined
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
  'objectOwners',
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
    tenantEndUsers: { type: 'boolean' },
  },
} as const

const resolveData = createOptionsResolver<Omit<ProxyOptions, (typeof HAND_CHECKED)[number]>>({
  pkg: PKG,
  codePrefix: 'GH_PROXY',
  schema: proxyOptionsSchema,
  handChecked: HAND_CHECKED,
  secretKeys: ['knownSecrets'],
})

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
  const owners = raw.objectOwners
  if (owners !== undefined && owners !== false && !(typeof owners === 'object' && owners !== null && typeof (owners as ObjectOwners).record === 'function' && typeof (owners as ObjectOwners).owner === 'function' && typeof (owners as ObjectOwners).claim === 'function'))
    fail('GH_PROXY_INVALID_OPTIONS', 'objectOwners must be false or have record, owner and claim methods (memoryObjectOwners(), redisObjectOwners())')
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
    tenantEndUsers: o.tenantEndUsers ?? true,
    objectOwners: owners === false ? undefined : ((owners as ObjectOwners | undefined) ?? memoryObjectOwners()),
    onEvent: options.onEvent,
    logger: (raw.logger as Logger | undefined) ?? noopLogger,
  }
}
