export { rateLimit, tokenLimit, quota } from './middleware'
export type {
  RateLimitHandler,
  QuotaHandler,
  QuotaUsage,
  RateLimitStats,
  RateLimitDecision,
} from './middleware'
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
export type { RateLimitStore, BucketRef, BucketState, QuotaRef, QuotaState, StoreStats } from './store'
export { estimateTokens, meterUpstreamUsage } from './tokens'
export type { TokenEstimate } from './tokens'
export { ipKey } from './keys'
export { periodOf, periodEnd } from './period'
export type { QuotaPeriod } from './period'
export { RateLimitErrorCodes } from './errors'
export type { RateLimitErrorCode } from './errors'
