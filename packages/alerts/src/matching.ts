import { isIP } from 'node:net'
import { isSharedLimitRefusal, normalizeIp, type SecurityEvent } from '@gatehouse/core'
import type { AlertMetric } from './conditions'
import type { ResolvedAlertRule } from './rules'

type IsRateLimit = (event: SecurityEvent) => boolean

/** Whether an event counts towards a condition's metric. */
export function countsFor(metric: AlertMetric, event: SecurityEvent, isRateLimit: IsRateLimit): boolean {
  switch (metric) {
    case 'auth_failures':
      return event.event_type === 'auth_failure'
    case 'rate_limit_violations':
      return isRateLimit(event)
    case 'security_events':
      return true
    case 'credential_rejections':
      return event.event_type === 'credential_access' && event.result === 'rejected'
    case 'credentials_disabled':
      return event.result === 'credential_disabled'
  }
}

/**
 * Whether an event is the caller's own doing, the only kind a block_ip rule counts: its failed
 * authentication, a refusal by its own per-address or per-key limit (`details.own_limit`), or a
 * request of its that a layer refused. A 429 from a bucket the caller shares with others (the
 * gateway's, a provider's, a quota) is somebody else's doing: counting it would let one tenant
 * drain a shared bucket and get the others' addresses denylisted.
 */
export function isCallersOwn(event: SecurityEvent, isRateLimit: IsRateLimit): boolean {
  if (event.event_type === 'auth_failure') return true
  if (event.event_type !== 'security_violation') return false
  if (!isRateLimit(event) && !isSharedLimitRefusal(event)) return true
  const details = event.details as Record<string, unknown> | undefined
  return details?.own_limit === true
}

/**
 * The window an event counts in for a rule: `*` (one global window) for notify_admin, the
 * normalised client address for block_ip; undefined when the event does not count for the rule
 * (another metric, or for block_ip no valid address or not the caller's own doing).
 */
export function subjectFor(rule: ResolvedAlertRule, event: SecurityEvent, isRateLimit: IsRateLimit): string | undefined {
  if (!countsFor(rule.metric, event, isRateLimit)) return undefined
  if (rule.action !== 'block_ip') return '*'
  if (typeof event.ip !== 'string' || !isCallersOwn(event, isRateLimit)) return undefined
  const ip = normalizeIp(event.ip)
  return isIP(ip) === 0 ? undefined : ip
}
