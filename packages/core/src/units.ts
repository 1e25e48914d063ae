import { GatehouseConfigError } from './errors'

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `"10s"`, `"5m"`, `"250ms"`, `"1h"`, `"1d"` or a number of milliseconds → milliseconds. */
export function parseDuration(value: string | number, name = 'duration'): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value
  const m = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(value) : null
  if (!m) {
    throw new GatehouseConfigError(
      'GH_CORE_INVALID_DURATION',
      `${name}: must be a duration such as "10s", "5m" or "250ms" (got ${JSON.stringify(value)})`,
    )
  }
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2]!.toLowerCase()]!)
}

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }

/** `"10mb"`, `"512kb"`, `"100b"` or a number of bytes → bytes. */
export function parseSize(value: string | number, name = 'size'): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value
  const m = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(value) : null
  if (!m) {
    throw new GatehouseConfigError(
      'GH_CORE_INVALID_SIZE',
      `${name}: must be a size such as "10mb" or "512kb" (got ${JSON.stringify(value)})`,
    )
  }
  return Math.floor(Number(m[1]) * SIZE_UNITS[(m[2] ?? 'b').toLowerCase()]!)
}
