import {
  createOptionsResolver,
  GatehouseConfigError,
  isLogger,
  noopLogger,
  type Logger,
  type SecurityEventHandler,
} from '@gatehouse/core'
import {
  HAND_CHECKED,
  PKG,
  quotaOptionsSchema,
  rateLimitOptionsSchema,
  tokenLimitOptionsSchema,
  type CommonLimitOptions,
  type HeadersDraft,
  type QuotaLimit,
  type QuotaOptions,
  type QuotaScope,
  type RateLimitOptions,
  type RateLimitScope,
  type RequestRate,
  type StoreErrorMode,
  type TokenLimitOptions,
  type TokenRate,
} from './options'
import { isRateLimitStore, type RateLimitStore } from './store'

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

export const invalid = (message: string): GatehouseConfigError =>
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

export const describe = (v: unknown): string =>
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

/**
 * What a request limit and a token limit resolve alike: the common fields, the top-level rule and the
 * per-provider rules. Refuses options where no rule sets a rate (`rateFields` names the fields that
 * would, for the message).
 */
function bucketConfig<R, S extends RateLimitScope>(
  o: R & CommonLimitOptions & { providers?: Record<string, R> | undefined; ipv6Subnet?: number | false | undefined },
  scope: S,
  toRule: (rate: R, where: string) => BucketRule | undefined,
  rateFields: string,
  createStore: () => RateLimitStore,
) {
  const rule = toRule(o, '')
  const providers = rules(o.providers, scope, toRule)
  if (!rule && Object.keys(providers).length === 0) {
    throw new GatehouseConfigError(
      'GH_RL_NO_LIMIT',
      `${PKG}: set ${rateFields}${scope === 'provider' ? ', or providers' : ''}`,
    )
  }
  return { ...commonConfig(o, scope, createStore), scope, rule, providers, ipv6Subnet: o.ipv6Subnet ?? 56 }
}

export function resolveRateLimitConfig(options: unknown, createStore: () => RateLimitStore): RateLimitConfig {
  const o = parseRateLimit(options)
  const scope = o.scope ?? 'ip'
  return Object.freeze({
    ...bucketConfig(o, scope, requestRule, 'requestsPerSecond or requestsPerMinute', createStore),
    legacyHeaders: o.legacyHeaders ?? false,
  })
}

export function resolveTokenLimitConfig(
  options: unknown,
  createStore: () => RateLimitStore,
): TokenLimitConfig {
  const o = parseTokenLimit(options)
  const scope = o.scope ?? 'provider'
  return Object.freeze({
    ...bucketConfig(o, scope, tokenRule, 'tokensPerMinute', createStore),
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



/** A value of `record` by own key only: never a prototype member such as "constructor". */
export const own = <V>(record: Readonly<Record<string, V>>, key: string): V | undefined =>
  Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined
