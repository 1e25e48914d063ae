/**
 * Quota periods are calendar months in UTC, named `yyyymm` as a number (202602 is February 2026).
 */
export type QuotaPeriod = number

/** The month that `epochMs` falls in, in UTC. */
export function periodOf(epochMs: number): QuotaPeriod {
  const d = new Date(epochMs)
  return d.getUTCFullYear() * 100 + d.getUTCMonth() + 1
}

/** When the period ends: midnight UTC on the first day of the next month, in epoch ms. */
export function periodEnd(period: QuotaPeriod): number {
  const year = Math.floor(period / 100)
  const month = period % 100 // 1..12; Date.UTC's month index is 0-based, so this is the next month
  return Date.UTC(year, month, 1)
}

/** When the period started, in epoch ms. */
export function periodStart(period: QuotaPeriod): number {
  const year = Math.floor(period / 100)
  const month = period % 100
  return Date.UTC(year, month - 1, 1)
}

export const isPeriod = (v: unknown): v is QuotaPeriod =>
  typeof v === 'number' && Number.isInteger(v) && v % 100 >= 1 && v % 100 <= 12 && v > 190000 && v < 1000000
