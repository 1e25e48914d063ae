import { isIP } from 'node:net'
import { normalizeIp, SECURITY_EVENT_TYPES } from '@gatehouse/core'

/** The label value that stands for everything past a label's ceiling or outside its known set. */
export const OTHER = 'other'
/** The label value for an absent value. */
export const UNKNOWN = 'unknown'

/**
 * A label whose values come from clients (an address): the first `max` distinct values are kept
 * as they are, later ones count under `other`, so a scan from many addresses cannot grow the
 * series without bound. Values are kept for the life of the instance (a value never moves from
 * its own series to `other`, which would make its counter jump).
 */
export class BoundedLabel {
  private readonly seen = new Set<string>()

  constructor(private readonly max: number) {}

  value(raw: string): string {
    if (this.seen.has(raw)) return raw
    if (this.seen.size >= this.max) return OTHER
    this.seen.add(raw)
    return raw
  }

  get size(): number {
    return this.seen.size
  }
}

/** An address as a label value: normalised, or `unknown`/`other` for anything that is not an IP. */
export function ipLabel(ip: unknown, bounded: BoundedLabel): string {
  if (typeof ip !== 'string' || ip === '') return UNKNOWN
  const normal = normalizeIp(ip)
  if (isIP(normal) === 0) return OTHER
  return bounded.value(normal)
}

export function providerLabel(provider: unknown, known: ReadonlySet<string>): string {
  if (provider === undefined || provider === null || provider === '') return UNKNOWN
  return typeof provider === 'string' && known.has(provider) ? provider : OTHER
}

export function statusLabel(status: unknown): string {
  const n = typeof status === 'string' && /^\d{3}$/.test(status) ? Number(status) : status
  return typeof n === 'number' && Number.isInteger(n) && n >= 100 && n <= 599 ? String(n) : OTHER
}

const EVENT_TYPES: ReadonlySet<string> = new Set(SECURITY_EVENT_TYPES)

export function eventTypeLabel(type: unknown): string {
  return typeof type === 'string' && EVENT_TYPES.has(type) ? type : OTHER
}
