import type { Logger, SecurityEventHandler } from '@gatehouse/core'
import type { RateLimitStore } from './store'

/** A JSON schema (draft-07, as ajv reads it). */
export type SchemaObject = Record<string, unknown>

export const PKG = '@gatehouse/rate-limit'

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
export const HAND_CHECKED = ['store', 'onEvent', 'logger'] as const

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

