import type { Entry } from './state'

/** An OAuth credential that carries what a refresh needs. */
export function canRefresh(entry: Entry): boolean {
  const o = entry.record.oauth
  return entry.record.type === 'oauth' && o?.refresh_token !== undefined && o.token_url !== undefined
}

/** fresh: use it; expiring: use it and refresh in the background; expired: refresh first. */
export function tokenState(entry: Entry, now: number, refreshSkewMs: number): 'fresh' | 'expiring' | 'expired' {
  if (entry.record.type !== 'oauth') return 'fresh'
  if (entry.stale) return 'expired'
  const exp = entry.record.oauth!.expires_at
  if (exp === undefined) return 'fresh'
  if (now >= exp) return 'expired'
  return now >= exp - refreshSkewMs ? 'expiring' : 'fresh'
}

/** Cooling down after a rejection, or expired with no refresh possible now. */
export function isUnhealthy(entry: Entry, now: number, refreshSkewMs: number): boolean {
  if (now < entry.unhealthyUntil) return true
  if (entry.record.type !== 'oauth') return false
  const state = tokenState(entry, now, refreshSkewMs)
  return state === 'expired' && (!canRefresh(entry) || now < entry.refresh.nextAttemptAt)
}

/** When a credential that cannot serve now may serve again (cool-down or refresh backoff), if it is waiting on either. */
export function usableAgainAt(entry: Entry, now: number): number | undefined {
  if (now < entry.unhealthyUntil) return entry.unhealthyUntil
  if (entry.record.type === 'oauth' && canRefresh(entry) && now < entry.refresh.nextAttemptAt) return entry.refresh.nextAttemptAt
  return undefined
}
