import type { SecurityEvent } from '@gatehouse/core'

/**
 * Folds repeated refusals into one line per interval, so a flood of refused requests cannot fill
 * the disk: the first refusal of a kind (event type, result, address, client key, and for the
 * access log the status) in a window is written in full; the repeats are counted and written as
 * one line when the window ends. Everything else passes through untouched.
 *
 * Bounded: past `maxKeys` kinds in flight, further ones share one bucket per event type and result
 * (address `*`), so many addresses cost no more memory than one.
 */
export interface RefusalAggregator {
  /** The events to write now for this one (none while it is a counted repeat). */
  take(event: SecurityEvent): SecurityEvent[]
  /** Summary lines of the windows that have ended (all of them with `all`). */
  drain(all: boolean): SecurityEvent[]
  /** Repeats counted and not written one by one, since creation. */
  readonly folded: number
}

interface Window {
  template: SecurityEvent
  start: number
  last: string
  count: number
  overflow: boolean
}

const statusOf = (e: SecurityEvent): number | undefined => {
  const s = (e.details as { status?: unknown } | undefined)?.status
  return typeof s === 'number' ? s : undefined
}

/** A refusal: an auth failure, a security violation, or an access-log line for a 4xx or 5xx answer. */
export function isRefusal(e: SecurityEvent): boolean {
  if (e.event_type === 'auth_failure' || e.event_type === 'security_violation') return true
  return e.event_type === 'provider_request' && (statusOf(e) ?? 0) >= 400
}

export function createRefusalAggregator(intervalMs: number, maxKeys: number, now: () => number = Date.now): RefusalAggregator {
  const windows = new Map<string, Window>()
  let folded = 0

  const summary = (w: Window): SecurityEvent => {
    const { template: t } = w
    return {
      timestamp: w.last,
      event_type: t.event_type,
      ...(t.provider !== undefined ? { provider: t.provider } : {}),
      ...(t.user_id !== undefined ? { user_id: t.user_id } : {}),
      ...(t.ip !== undefined && !w.overflow ? { ip: t.ip } : {}),
      ...(t.result !== undefined ? { result: t.result } : {}),
      details: {
        aggregated: true,
        count: w.count,
        first_at: new Date(w.start).toISOString(),
        last_at: w.last,
        interval_ms: intervalMs,
        ...(w.overflow ? { addresses: 'many' } : {}),
        ...(statusOf(t) !== undefined ? { status: statusOf(t) } : {}),
      },
    } as SecurityEvent
  }

  const keyOf = (e: SecurityEvent, ip: string): string =>
    `${e.event_type}\u0000${e.result ?? ''}\u0000${ip}\u0000${e.user_id ?? ''}\u0000${statusOf(e) ?? ''}`

  return {
    take(event) {
      if (!isRefusal(event)) return [event]
      const t = now()
      let key = keyOf(event, event.ip ?? '')
      let overflow = false
      if (!windows.has(key) && windows.size >= maxKeys) {
        key = `${event.event_type}\u0000${event.result ?? ''}\u0000*`
        overflow = true
      }
      const w = windows.get(key)
      const out: SecurityEvent[] = []
      if (w && t - w.start < intervalMs) {
        w.count++
        w.last = typeof event.timestamp === 'string' ? event.timestamp : new Date(t).toISOString()
        folded++
        return out
      }
      if (w) {
        if (w.count > 0) out.push(summary(w))
        windows.delete(key)
      }
      windows.set(key, { template: event, start: t, last: new Date(t).toISOString(), count: 0, overflow })
      out.push(event)
      return out
    },
    drain(all) {
      const t = now()
      const out: SecurityEvent[] = []
      for (const [key, w] of windows) {
        if (!all && t - w.start < intervalMs) continue
        if (w.count > 0) out.push(summary(w))
        windows.delete(key)
      }
      return out
    },
    get folded() {
      return folded
    },
  }
}
