import type { Masker, SecurityEvent } from '@gatehouse/core'
import { DashboardErrorCodes } from './errors'
import {
  PKG,
  type DashboardConfig,
  type DashboardDenylistEntry,
  type DashboardFinding,
  type DashboardLimit,
  type DashboardRefusals,
} from './options'

/** One section's data, or why there is none ("not configured", "not available"). */
export type Section<T> = { ok: true; value: T } | { ok: false; reason: string }

/** What one page view shows. */
export interface DashboardView {
  events: Section<readonly SecurityEvent[]>
  refused: Section<DashboardRefusals>
  deny: Section<readonly DashboardDenylistEntry[]>
  limits: Section<readonly DashboardLimit[]>
  doctor: Section<readonly DashboardFinding[]>
  limit: number
}

const withTimeout = <T>(work: () => T | Promise<T>, ms: number): Promise<T> =>
  new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms}ms`)), ms)
    timer.unref()
    Promise.resolve()
      .then(work)
      .then(resolve, reject)
      .finally(() => clearTimeout(timer))
  })

/** A JSON-safe copy (Dates become ISO strings, bigints text) so masking cannot lose anything. */
function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? 'null') as T
}

/**
 * Ask every data provider at once, each within `dataTimeout`, and mask what they return (values
 * and keys). A provider that throws or is slow is logged and its section shows "not available".
 */
export async function loadView(config: DashboardConfig, mask: Masker): Promise<DashboardView> {
  const d = config.data
  const load = async <T>(name: string, fn: (() => T | Promise<T>) | undefined): Promise<Section<T>> => {
    if (!fn) return { ok: false, reason: 'not configured' }
    try {
      return { ok: true, value: mask.value(plain(await withTimeout(fn, config.dataTimeoutMs))) }
    } catch (err) {
      config.logger.error(`${PKG}: the dashboard's ${name} provider failed`, {
        code: DashboardErrorCodes.GH_DASHBOARD_DATA_FAILED,
        error: mask.text(err instanceof Error ? err.message : String(err)),
      })
      return { ok: false, reason: 'not available' }
    }
  }
  const [events, refused, deny, limits, doctor] = await Promise.all([
    load('recentEvents', d.recentEvents && (() => d.recentEvents!(config.recentLimit))),
    load('topRefused', d.topRefused),
    load('denylist', d.denylist),
    load('limits', d.limits),
    load('doctor', d.doctor),
  ])
  return {
    events: events as Section<readonly SecurityEvent[]>,
    refused: refused as Section<DashboardRefusals>,
    deny: deny as Section<readonly DashboardDenylistEntry[]>,
    limits: limits as Section<readonly DashboardLimit[]>,
    doctor: doctor as Section<readonly DashboardFinding[]>,
    limit: config.recentLimit,
  }
}
