import type { ProviderName } from './providers'

/** The seven security event types, shared by every package and written by the audit log. */
export const SECURITY_EVENT_TYPES = [
  'auth_success',
  'auth_failure',
  'token_refresh',
  'config_change',
  'credential_access',
  'provider_request',
  'security_violation',
] as const

export type SecurityEventType = (typeof SECURITY_EVENT_TYPES)[number]

/**
 * One security event. Field names follow the audit log's line format (SPEC §2).
 * `user_id` is always a public key id (`key_3f9a…`), never a key.
 */
export interface SecurityEvent {
  timestamp: string
  event_type: SecurityEventType
  provider?: ProviderName | string
  user_id?: string
  ip?: string
  request_id?: string
  result?: string
  details?: Record<string, unknown>
}

/** What a middleware calls to report what it did. */
export type SecurityEventHandler = (event: SecurityEvent) => void

export type SecurityEventInput = Omit<SecurityEvent, 'timestamp'> & { timestamp?: string }

/**
 * Emit an event through an optional handler. The timestamp is filled in (on the input object
 * itself: callers pass a fresh literal, and copying every event cost more than the rest of this
 * function), and a handler that throws never breaks the request that caused the event: its error
 * goes to `onError` when given.
 */
export function emitSecurityEvent(
  handler: SecurityEventHandler | undefined,
  input: SecurityEventInput,
  onError?: (err: unknown) => void,
): void {
  if (!handler) return
  if (input.timestamp === undefined) input.timestamp = new Date().toISOString()
  try {
    handler(input as SecurityEvent)
  } catch (err) {
    onError?.(err)
  }
}

export const isSecurityEventType = (v: unknown): v is SecurityEventType =>
  typeof v === 'string' && (SECURITY_EVENT_TYPES as readonly string[]).includes(v)

/**
 * Decides whether a repeated event is worth emitting again: true the first time a key is seen, then
 * at most once per `intervalMs` for that key. Remembers at most `max` keys (oldest forgotten first),
 * so a flood of distinct keys cannot grow it. `intervalMs: 0` lets everything through.
 */
export function createRepeatFilter(intervalMs: number, max = 10_000): (key: string) => boolean {
  const seen = new Map<string, number>()
  return (key: string): boolean => {
    if (intervalMs <= 0) return true
    const now = Date.now()
    const last = seen.get(key)
    if (last !== undefined && now - last < intervalMs) return false
    seen.delete(key)
    if (seen.size >= max) seen.delete(seen.keys().next().value!)
    seen.set(key, now)
    return true
  }
}
