/**
 * The error codes of @gatehouse/rate-limit. Construction-time codes are thrown as
 * GatehouseConfigError; run-time codes appear in `security_violation` events (`details.code`) and in
 * the errors a store rejects with.
 */
export const RateLimitErrorCodes = {
  GH_RL_INVALID_OPTIONS: 'GH_RL_INVALID_OPTIONS',
  GH_RL_UNKNOWN_OPTION: 'GH_RL_UNKNOWN_OPTION',
  GH_RL_NOT_CALLED: 'GH_RL_NOT_CALLED',
  GH_RL_NO_LIMIT: 'GH_RL_NO_LIMIT',
  GH_RL_STORE_INVALID: 'GH_RL_STORE_INVALID',
  GH_RL_REDIS_CLIENT_MISSING: 'GH_RL_REDIS_CLIENT_MISSING',
  GH_RL_QUOTA_FILE_INVALID: 'GH_RL_QUOTA_FILE_INVALID',
  GH_RL_QUOTA_FILE_INSECURE: 'GH_RL_QUOTA_FILE_INSECURE',
  GH_RL_STORE_UNAVAILABLE: 'GH_RL_STORE_UNAVAILABLE',
  GH_RL_RATE_LIMITED: 'GH_RL_RATE_LIMITED',
  GH_RL_TOKEN_LIMITED: 'GH_RL_TOKEN_LIMITED',
  GH_RL_QUOTA_EXCEEDED: 'GH_RL_QUOTA_EXCEEDED',
  GH_RL_PERMISSIVE_TRUST_PROXY: 'GH_RL_PERMISSIVE_TRUST_PROXY',
  GH_RL_UNEXPECTED_X_FORWARDED_FOR: 'GH_RL_UNEXPECTED_X_FORWARDED_FOR',
} as const

export type RateLimitErrorCode = keyof typeof RateLimitErrorCodes
