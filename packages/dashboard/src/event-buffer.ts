import type { SecurityEvent } from '@gatehouse/core'
import type { DashboardRefusals } from './options'

/** Options of `createEventBuffer()`. */
export interface EventBufferOptions {
  /** Events kept, newest first. @default 500 */
  size?: number
  /** Entries in each top-refused list. @default 10 */
  top?: number
  /** Distinct addresses and keys counted; past it, new ones are counted under `other`. @default 10000 */
  maxTracked?: number
}

/** An in-memory source for the dashboard's recent events and top refusals. */
export interface EventBuffer {
  /** Pass as (or alongside) an `onEvent`. Never throws. */
  record(event: SecurityEvent): void
  recentEvents(limit: number): SecurityEvent[]
  topRefused(): DashboardRefusals
  clear(): void
}

const REFUSALS = new Set(['auth_failure', 'security_violation'])

/**
 * Keep the last events and count refusals (`auth_failure`, `security_violation`) per client
 * address and key id, for `dashboardRouter({ data })` when no database is queried for them.
 */
export function createEventBuffer(options: EventBufferOptions = {}): EventBuffer {
  const size = Math.max(1, Math.floor(options.size ?? 500))
  const top = Math.max(1, Math.floor(options.top ?? 10))
  const maxTracked = Math.max(1, Math.floor(options.maxTracked ?? 10_000))
  const ring: SecurityEvent[] = []
  let next = 0
  const ips = new Map<string, number>()
  const keys = new Map<string, number>()

  const bump = (map: Map<string, number>, value: string): void => {
    const k = map.has(value) || map.size < maxTracked ? value : 'other'
    map.set(k, (map.get(k) ?? 0) + 1)
  }
  const ranked = (map: Map<string, number>): Array<[string, number]> =>
    [...map.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, top)

  return Object.freeze({
    record(event: SecurityEvent): void {
      try {
        if (typeof event !== 'object' || event === null) return
        const copy = { ...event }
        if (ring.length < size) ring.push(copy)
        else ring[next] = copy
        next = (next + 1) % size
        if (REFUSALS.has(event.event_type)) {
          if (typeof event.ip === 'string' && event.ip !== '') bump(ips, event.ip)
          if (typeof event.user_id === 'string' && event.user_id !== '') bump(keys, event.user_id)
        }
      } catch {
        // never throws into the emitter
      }
    },
    recentEvents(limit: number): SecurityEvent[] {
      const out: SecurityEvent[] = []
      const n = Math.min(ring.length, Math.max(0, Math.floor(limit)))
      for (let i = 1; i <= n; i++) out.push(ring[(next - i + ring.length * 2) % ring.length]!)
      return out
    },
    topRefused(): DashboardRefusals {
      return {
        ips: ranked(ips).map(([ip, count]) => ({ ip, count })),
        keys: ranked(keys).map(([key_id, count]) => ({ key_id, count })),
      }
    },
    clear(): void {
      ring.length = 0
      next = 0
      ips.clear()
      keys.clear()
    },
  })
}
