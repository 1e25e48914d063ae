import type { SecurityEvent } from '@gatehouse/core'

/** A security event (an auth_failure from 192.168.1.100 for claude unless overridden), stamped now. */
export const securityEvent = (overrides: Partial<SecurityEvent> = {}): SecurityEvent => ({
  timestamp: new Date().toISOString(),
  event_type: 'auth_failure',
  provider: 'claude',
  ip: '192.168.1.100',
  result: 'invalid_token',
  ...overrides,
})

/** A 429 event; `ownLimit` says whether the caller's own per-IP or per-key limit refused it. */
export const rateLimitedEvent = (ip: string, ownLimit = true): SecurityEvent =>
  securityEvent({ event_type: 'security_violation', result: 'rate_limited', ip, details: { own_limit: ownLimit } })
