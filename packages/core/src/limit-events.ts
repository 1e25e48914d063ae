import type { SecurityEvent } from './events'

/**
 * Whether an event is a rate-limit violation: a `security_violation` whose `result` is
 * `rate_limited` or starts with `rate_limit` or `quota` (`rate_limit_exceeded`, `quota_exceeded`).
 * The one test behind `@gatehouse/metrics`' `rate_limit_violations_total` and the
 * `rate_limit_violations` condition of `@gatehouse/alerts`, so a metric and a rule count alike.
 */
export function isRateLimitViolation(event: SecurityEvent): boolean {
  return (
    event.event_type === 'security_violation' &&
    typeof event.result === 'string' &&
    (event.result === 'rate_limited' || event.result.startsWith('rate_limit') || event.result.startsWith('quota'))
  )
}

/**
 * A refusal by a limit that is not the caller's alone, whatever its `result` says: the limiter
 * marked it `own_limit: false` (a global, provider or quota bucket, a store outage).
 */
export function isSharedLimitRefusal(event: SecurityEvent): boolean {
  const details = event.details as Record<string, unknown> | undefined
  return details?.own_limit === false
}
