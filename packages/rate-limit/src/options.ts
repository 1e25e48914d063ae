import {
  createOptionsResolver,
  GatehouseConfigError,
  isLogger,
  noopLogger,
  type Logger,
  type SecurityEventHandler,
} from '@gatehouse/core'
import type { Redis } from 'ioredis'
import { isRateLimitStore, type RateLimitStore } from './store'

/** A JSON schema (draft-07, as ajv reads it). */
export type SchemaObject = Record<string, unknown>

const PKG = '@gatehouse/rate-limit'

/** Which clients share a bucket. */
export type RateLimitScope = 'global' | 'ip' | 'key' | 'provider'
/** Quotas are kept for the whole gateway, per authenticated client key, or per provider. */
export type QuotaScope = 'global' | 'key' | 'provider'
/** What to do when the store (Redis) cannot be reached. */
export type StoreErrorMode = 'allow' | 'deny'
/** Which IETF draft the `RateLimit-*` headers follow. */
export type HeadersDraft = 'draft-6' | 'draft-7' | 'draft-8'

/** Options every limiter takes. */
export interface CommonLimitOptions {
  /**
   * Where buckets and quotas live: `memoryStore()` or `redisStore()`. Give every limiter the same
   * store; each limiter keeps its own namespace inside it.
   * @default a memoryStore() of this limiter's own
   */
  store?: RateLimitStore | undefined
  /**
   * When the store cannot be reached: `allow` serves the request without limiting (logged at error,
   * counted in `stats().failedOpen`); `deny` answers 503 in the provider's error shape.
   * @default "allow"
   */
  onStoreError?: StoreErrorMode | undefined
  /**
   * The `RateLimit-*` header format: `draft-6` sends `RateLimit-Limit`, `RateLimit-Remaining`,
   * `RateLimit-Reset` and `RateLimit-Policy`; `draft-7` a combined `RateLimit`; `draft-8` named policies.
   * @default "draft-6"
   */
  standardHeaders?: HeadersDraft | undefined
  /**
   * Names this limiter's buckets in the store. Two limiters of the same scope on one store need
   * different names, or they share buckets.
   * @default the scope
   */
  name?: string | undefined
  /** Receives a `security_violation` event for each refusal. */
  onEvent?: SecurityEventHandler | undefined
  /** Store failures are logged here at error (at most one line per 5 s, with a count). @default a no-op logger */
  logger?: Logger | undefined
}

/** A request rate: one of `requestsPerSecond` or `requestsPerMinute`, and an optional burst. */
export interface RequestRate {
  /** Requests added back to the bucket per second. */
  requestsPerSecond?: number | undefined
  /** Requests added back to the bucket per minute. */
  requestsPerMinute?: number | undefined
  /**
   * Most requests admitted at once (the bucket's size).
   * @default one second's worth for requestsPerSecond, one minute's worth for requestsPerMinute (at least 1)
   */
  burst?: number | undefined
}

export interface RateLimitOptions extends CommonLimitOptions, RequestRate {
  /**
   * Who shares a bucket: `global` (everyone), `ip` (each client address, IPv6 by subnet), `key`
   * (each authenticated client key, from `res.locals.gatehouse.clientKeyId`; a request without one
   * is keyed by its address), or `provider` (each upstream provider).
   * @default "ip"
   */
  scope?: RateLimitScope | undefined
  /**
   * Per-provider rates for `scope: 'provider'`, by provider name. A provider not listed uses the
   * top-level rate, or is not limited when there is none.
   */
  providers?: Record<string, RequestRate> | undefined
  /**
   * Prefix length that groups IPv6 clients into one bucket (a /56 is what one subscriber usually
   * gets). `false` keys each full address. IPv4-mapped IPv6 addresses are always keyed as IPv4.
   * @default 56
   */
  ipv6Subnet?: number | false | undefined
  /** Also send `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`. @default false */
  legacyHeaders?: boolean | undefined
}

/** A token rate: tokens per minute and an optional burst. */
export interface TokenRate {
  /** Tokens (input plus output) added back per minute. */
  tokensPerMinute?: number | undefined
  /** Most tokens in the bucket. @default tokensPerMinute */
  burst?: number | undefined
}

export interface TokenLimitOptions extends CommonLimitOptions, TokenRate {
  /** Who shares a token bucket (see RateLimitOptions.scope). @default "provider" */
  scope?: RateLimitScope | undefined
  /** Per-provider token rates for `scope: 'provider'`. */
  providers?: Record<string, TokenRate> | undefined
  /** IPv6 grouping for `scope: 'ip'` (see RateLimitOptions.ipv6Subnet). @default 56 */
  ipv6Subnet?: number | false | undefined
  /**
   * Output tokens to reserve when the request names no `max_tokens` (or
   * `max_completion_tokens`, `max_output_tokens`, `generationConfig.maxOutputTokens`).
   * @default 4096
   */
  defaultMaxTokens?: number | undefined
}

/** A quota: tokens per calendar month (UTC). */
export interface QuotaLimit {
  /** Tokens (input plus output) allowed per period. */
  limit: number
  /** When the counter starts again: `monthly`, at 00:00 UTC on the first of the month. @default "monthly" */
  reset?: 'monthly' | undefined
}

export interface QuotaOptions extends CommonLimitOptions, Partial<QuotaLimit> {
  /** Whose usage is counted: `global`, each client `key`, or each `provider`. @default "provider" */
  scope?: QuotaScope | undefined
  /** Per-provider quotas for `scope: 'provider'`; a provider not listed uses the top-level `limit`. */
  providers?: Record<string, QuotaLimit> | undefined
  /** Per-key quotas for `scope: 'key'`, by public key id (`key_…`); other keys use the top-level `limit`. */
  keys?: Record<string, QuotaLimit> | undefined
  /** See TokenLimitOptions.defaultMaxTokens. @default 4096 */
  defaultMaxTokens?: number | undefined
}

/** A bucket's resolved shape. */
export interface BucketRule {
  readonly capacity: number
  readonly refillPerSecond: number
}

interface CommonConfig {
  readonly store: RateLimitStore
  readonly ownsStore: boolean
  readonly onStoreError: StoreErrorMode
  readonly standardHeaders: HeadersDraft
  readonly name: string
  readonly onEvent: SecurityEventHandler | undefined
  readonly logger: Logger
}

export interface RateLimitConfig extends CommonConfig {
  readonly scope: RateLimitScope
  readonly rule: BucketRule | undefined
  readonly providers: Readonly<Record<string, BucketRule>>
  readonly ipv6Subnet: number | false
  readonly legacyHeaders: boolean
}

export interface TokenLimitConfig extends CommonConfig {
  readonly scope: RateLimitScope
  readonly rule: BucketRule | undefined
  readonly providers: Readonly<Record<string, BucketRule>>
  readonly ipv6Subnet: number | false
  readonly defaultMaxTokens: number
}

export interface QuotaConfig extends CommonConfig {
  readonly scope: QuotaScope
  readonly limit: number | undefined
  readonly providers: Readonly<Record<string, number>>
  readonly keys: Readonly<Record<string, number>>
  readonly defaultMaxTokens: number
}

const positive = { type: 'number', exclusiveMinimum: 0 } as const
const burst = { type: 'integer', minimum: 1 } as const
const requestRateProps = { requestsPerSecond: positive, requestsPerMinute: positive, burst }
const tokenRateProps = { tokensPerMinute: { type: 'integer', minimum: 1 }, burst }
const quotaLimitProps = { limit: { type: 'integer', minimum: 0 }, reset: { enum: ['monthly'] } }
const common = {
  onStoreError: { enum: ['allow', 'deny'] },
  standardHeaders: { enum: ['draft-6', 'draft-7', 'draft-8'] },
  name: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.-]+$' },
}
const ipv6Subnet = { anyOf: [{ type: 'integer', minimum: 1, maximum: 128 }, { const: false }] }
const map = (props: Record<string, unknown>, required: string[] = []): SchemaObject => ({
  type: 'object',
  additionalProperties: { type: 'object', additionalProperties: false, properties: props, required },
})
const HAND_CHECKED = ['store', 'onEvent', 'logger'] as const

/** JSON schema of rateLimit()'s data-shaped options (the server composes its config schema from it). */
export const rateLimitOptionsSchema: SchemaObject = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...common,
    ...requestRateProps,
    scope: { enum: ['global', 'ip', 'key', 'provider'] },
    providers: map(requestRateProps),
    ipv6Subnet,
    legacyHeaders: { type: 'boolean' },
    ...Object.fromEntries(HAND_CHECKED.map((k) => [k, {}])),
  },
}

/** JSON schema of tokenLimit()'s data-shaped options. */
export const tokenLimitOptionsSchema: SchemaObject = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...common,
    ...tokenRateProps,
    scope: { enum: ['global', 'ip', 'key', 'provider'] },
    providers: map(tokenRateProps),
    ipv6Subnet,
    defaultMaxTokens: { type: 'integer', minimum: 0 },
    ...Object.fromEntries(HAND_CHECKED.map((k) => [k, {}])),
  },
}

/** JSON schema of quota()'s data-shaped options. */
export const quotaOptionsSchema: SchemaObject = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...common,
    ...quotaLimitProps,
    scope: { enum: ['global', 'key', 'provider'] },
    providers: map(quotaLimitProps, ['limit']),
    keys: map(quotaLimitProps, ['limit']),
    defaultMaxTokens: { type: 'integer', minimum: 0 },
    ...Object.fromEntries(HAND_CHECKED.map((k) => [k, {}])),
  },
}

const resolverSpec = { pkg: PKG, codePrefix: 'GH_RL' as const, handChecked: HAND_CHECKED }
const parseRateLimit = createOptionsResolver<RateLimitOptions>({
  ...resolverSpec,
  schema: rateLimitOptionsSchema,
})
const parseTokenLimit = createOptionsResolver<TokenLimitOptions>({
  ...resolverSpec,
  schema: tokenLimitOptionsSchema,
})
const parseQuota = createOptionsResolver<QuotaOptions>({ ...resolverSpec, schema: quotaOptionsSchema })

const invalid = (message: string): GatehouseConfigError =>
  new GatehouseConfigError('GH_RL_INVALID_OPTIONS', `${PKG}: ${message}`)

function commonConfig(
  options: CommonLimitOptions,
  scope: string,
  createStore: () => RateLimitStore,
): CommonConfig {
  if (options.store !== undefined && !isRateLimitStore(options.store)) {
    throw new GatehouseConfigError(
      'GH_RL_STORE_INVALID',
      `${PKG}: store must be a RateLimitStore such as memoryStore() or redisStore() (got ${describe(options.store)})`,
    )
  }
  if (options.onEvent !== undefined && typeof options.onEvent !== 'function') {
    throw invalid(`onEvent must be a function (got ${describe(options.onEvent)})`)
  }
  if (options.logger !== undefined && !isLogger(options.logger)) {
    throw invalid(`logger must have error, warn, info and debug methods (got ${describe(options.logger)})`)
  }
  return {
    store: options.store ?? createStore(),
    ownsStore: options.store === undefined,
    onStoreError: options.onStoreError ?? 'allow',
    standardHeaders: options.standardHeaders ?? 'draft-6',
    name: options.name ?? scope,
    onEvent: options.onEvent,
    logger: options.logger ?? noopLogger,
  }
}

const describe = (v: unknown): string =>
  typeof v === 'function'
    ? 'a function'
    : v !== null && typeof v === 'object'
      ? 'an object without the required methods'
      : JSON.stringify(v)

function requestRule(rate: RequestRate, where: string): BucketRule | undefined {
  if (rate.requestsPerSecond !== undefined && rate.requestsPerMinute !== undefined) {
    throw invalid(
      `${where}requestsPerSecond and ${where}requestsPerMinute cannot both be set (got ${rate.requestsPerSecond} and ${rate.requestsPerMinute})`,
    )
  }
  const perSecond =
    rate.requestsPerSecond ?? (rate.requestsPerMinute !== undefined ? rate.requestsPerMinute / 60 : undefined)
  if (perSecond === undefined) {
    if (rate.burst !== undefined)
      throw invalid(
        `${where}burst needs requestsPerSecond or requestsPerMinute (got burst ${rate.burst} alone)`,
      )
    return undefined
  }
  const unit = rate.requestsPerSecond ?? rate.requestsPerMinute ?? 1
  return Object.freeze({ capacity: rate.burst ?? Math.max(1, Math.ceil(unit)), refillPerSecond: perSecond })
}

function tokenRule(rate: TokenRate, where: string): BucketRule | undefined {
  if (rate.tokensPerMinute === undefined) {
    if (rate.burst !== undefined)
      throw invalid(`${where}burst needs tokensPerMinute (got burst ${rate.burst} alone)`)
    return undefined
  }
  return Object.freeze({
    capacity: rate.burst ?? rate.tokensPerMinute,
    refillPerSecond: rate.tokensPerMinute / 60,
  })
}

function rules<R>(
  providers: Record<string, R> | undefined,
  scope: string,
  toRule: (rate: R, where: string) => BucketRule | undefined,
): Readonly<Record<string, BucketRule>> {
  if (providers === undefined) return Object.freeze({})
  if (scope !== 'provider')
    throw invalid(`providers is only used with scope "provider" (got scope ${JSON.stringify(scope)})`)
  const out: [string, BucketRule][] = []
  for (const [name, rate] of Object.entries(providers)) {
    const rule = toRule(rate, `providers.${name}.`)
    if (!rule) throw new GatehouseConfigError('GH_RL_NO_LIMIT', `${PKG}: providers.${name} sets no rate`)
    out.push([name, rule])
  }
  return Object.freeze(Object.fromEntries(out)) // own data properties only, "__proto__" included
}

export function resolveRateLimitConfig(options: unknown, createStore: () => RateLimitStore): RateLimitConfig {
  const o = parseRateLimit(options)
  const scope = o.scope ?? 'ip'
  const rule = requestRule(o, '')
  const providers = rules(o.providers, scope, requestRule)
  if (!rule && Object.keys(providers).length === 0) {
    throw new GatehouseConfigError(
      'GH_RL_NO_LIMIT',
      `${PKG}: set requestsPerSecond or requestsPerMinute${scope === 'provider' ? ', or providers' : ''}`,
    )
  }
  return Object.freeze({
    ...commonConfig(o, scope, createStore),
    scope,
    rule,
    providers,
    ipv6Subnet: o.ipv6Subnet ?? 56,
    legacyHeaders: o.legacyHeaders ?? false,
  })
}

export function resolveTokenLimitConfig(
  options: unknown,
  createStore: () => RateLimitStore,
): TokenLimitConfig {
  const o = parseTokenLimit(options)
  const scope = o.scope ?? 'provider'
  const rule = tokenRule(o, '')
  const providers = rules(o.providers, scope, tokenRule)
  if (!rule && Object.keys(providers).length === 0) {
    throw new GatehouseConfigError(
      'GH_RL_NO_LIMIT',
      `${PKG}: set tokensPerMinute${scope === 'provider' ? ', or providers' : ''}`,
    )
  }
  return Object.freeze({
    ...commonConfig(o, scope, createStore),
    scope,
    rule,
    providers,
    ipv6Subnet: o.ipv6Subnet ?? 56,
    defaultMaxTokens: o.defaultMaxTokens ?? 4096,
  })
}

export function resolveQuotaConfig(options: unknown, createStore: () => RateLimitStore): QuotaConfig {
  const o = parseQuota(options)
  const scope = o.scope ?? 'provider'
  if (o.providers !== undefined && scope !== 'provider') {
    throw invalid(`providers is only used with scope "provider" (got scope ${JSON.stringify(scope)})`)
  }
  if (o.keys !== undefined && scope !== 'key') {
    throw invalid(`keys is only used with scope "key" (got scope ${JSON.stringify(scope)})`)
  }
  const limits = (m: Record<string, QuotaLimit> | undefined): Readonly<Record<string, number>> =>
    Object.freeze(Object.fromEntries(Object.entries(m ?? {}).map(([k, v]) => [k, v.limit])))
  const providers = limits(o.providers)
  const keys = limits(o.keys)
  if (o.limit === undefined && Object.keys(providers).length === 0 && Object.keys(keys).length === 0) {
    throw new GatehouseConfigError(
      'GH_RL_NO_LIMIT',
      `${PKG}: set limit${scope === 'provider' ? ', or providers' : scope === 'key' ? ', or keys' : ''}`,
    )
  }
  return Object.freeze({
    ...commonConfig(o, scope, createStore),
    scope,
    limit: o.limit,
    providers,
    keys,
    defaultMaxTokens: o.defaultMaxTokens ?? 4096,
  })
}

// ---- stores ----

const memorySchema: SchemaObject = {
  type: 'object',
  additionalProperties: false,
  properties: {
    maxKeys: { type: 'integer', minimum: 1 },
    quotaFile: { type: 'string', minLength: 1 },
    quotaFlushMs: { type: 'integer', minimum: 0 },
    logger: {},
    clock: {},
  },
}
const parseMemory = createOptionsResolver<{
  maxKeys?: number | undefined
  quotaFile?: string | undefined
  quotaFlushMs?: number | undefined
  logger?: Logger | undefined
  clock?: (() => number) | undefined
}>({ pkg: `${PKG} memoryStore`, codePrefix: 'GH_RL', schema: memorySchema, handChecked: ['logger', 'clock'] })

export function resolveMemoryStoreOptions(options: unknown): {
  maxKeys: number
  quotaFile: string | undefined
  quotaFlushMs: number
  logger: Logger
  clock: () => number
} {
  const o = parseMemory(options)
  if (o.logger !== undefined && !isLogger(o.logger))
    throw invalid(`memoryStore logger must have error, warn, info and debug methods`)
  if (o.clock !== undefined && typeof o.clock !== 'function')
    throw invalid(`memoryStore clock must be a function (got ${describe(o.clock)})`)
  return {
    maxKeys: o.maxKeys ?? 10_000,
    quotaFile: o.quotaFile,
    quotaFlushMs: o.quotaFlushMs ?? 1000,
    logger: o.logger ?? noopLogger,
    clock: o.clock ?? Date.now,
  }
}

const redisSchema: SchemaObject = {
  type: 'object',
  additionalProperties: false,
  properties: {
    url: { type: 'string', pattern: '^rediss?://' },
    prefix: { type: 'string', minLength: 1, maxLength: 128 },
    commandTimeoutMs: { type: 'integer', minimum: 1, maximum: 60_000 },
    client: {},
    logger: {},
  },
}
const parseRedis = createOptionsResolver<{
  url?: string | undefined
  prefix?: string | undefined
  commandTimeoutMs?: number | undefined
  client?: Redis | undefined
  logger?: Logger | undefined
}>({
  pkg: `${PKG} redisStore`,
  codePrefix: 'GH_RL',
  schema: redisSchema,
  handChecked: ['client', 'logger'],
  secretKeys: ['url'],
})

export function resolveRedisStoreOptions(options: unknown): {
  client: Redis | undefined
  url: string | undefined
  prefix: string
  commandTimeoutMs: number
  logger: Logger | undefined
} {
  const o = parseRedis(options)
  if ((o.client === undefined) === (o.url === undefined)) {
    throw new GatehouseConfigError(
      'GH_RL_REDIS_CLIENT_MISSING',
      `${PKG}: redisStore needs exactly one of client or url`,
    )
  }
  if (o.client !== undefined) {
    const c = o.client as unknown as Record<string, unknown>
    if (
      typeof c !== 'object' ||
      c === null ||
      typeof c.evalsha !== 'function' ||
      typeof c.status !== 'string'
    ) {
      throw new GatehouseConfigError(
        'GH_RL_REDIS_CLIENT_MISSING',
        `${PKG}: redisStore client must be an ioredis client (got ${describe(o.client)})`,
      )
    }
  }
  if (o.logger !== undefined && !isLogger(o.logger))
    throw invalid(`redisStore logger must have error, warn, info and debug methods`)
  return {
    client: o.client,
    url: o.url,
    prefix: o.prefix ?? 'gatehouse:rl:',
    commandTimeoutMs: o.commandTimeoutMs ?? 500,
    logger: o.logger,
  }
}

/** A value of `record` by own key only: never a prototype member such as "constructor". */
export const own = <V>(record: Readonly<Record<string, V>>, key: string): V | undefined =>
  Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined
