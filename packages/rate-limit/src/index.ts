export { rateLimit } from './middleware'
export { tokenLimit } from './token-limit'
export { quota } from './quota'
export type { RateLimitHandler, RateLimitStats, RateLimitDecision } from './accounting'
export type { QuotaHandler, QuotaUsage } from './quota'
export { rateLimitOptionsSchema, tokenLimitOptionsSchema, quotaOptionsSchema } from './options'
export type {
  RateLimitOptions,
  TokenLimitOptions,
  QuotaOptions,
  CommonLimitOptions,
  RequestRate,
  TokenRate,
  QuotaLimit,
  RateLimitScope,
  QuotaScope,
  StoreErrorMode,
  HeadersDraft,
} from './options'
export { memoryStore, MemoryStore } from './memory-store'
export type { MemoryStoreOptions } from './memory-store'
export { redisStore, RedisStore } from './redis-store'
export type { RedisStoreOptions } from './redis-store'
export { TokenBucketStore } from './bucket-store'
export type { TokenBucketStoreOptions } from './bucket-store'
export { StoreUnavailableError, isStoreUnavailable, isRateLimitStore } from './store'
export type { RateLimitStore, BucketRef, BucketState, QuotaRef, QuotaState, SlotRef, SlotState, StoreStats } from './store'
export { keyLimits } from './key-limits'
export type { KeyLimitsOptions, KeyLimitsHandler, KeyLimitStats } from './key-limits'
export { LocalFallbackStore } from './local-fallback'
export type { LocalFallbackOptions } from './local-fallback'
export { estimateTokens, meterUpstreamUsage } from './tokens'
export type { TokenEstimate } from './tokens'
export { ipKey } from './keys'
export { periodOf, periodEnd } from './period'
export type { QuotaPeriod } from './period'
export { RateLimitErrorCodes } from './errors'
export type { RateLimitErrorCode } from './errors'
