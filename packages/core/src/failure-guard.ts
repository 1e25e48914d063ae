import { addressBucket } from './ip'

export interface FailureGuardOptions {
  /** Wrong keys from one bucket, within the window, before the bucket is banned. */
  maxFailures: number
  /** The window failures are counted in. */
  windowMs: number
  /** How long a ban lasts. */
  banMs: number
  /** Wrong keys from everywhere, within the window, before every wrong key is answered 429. */
  globalBudget: number
  /** Buckets tracked at most; past this, new addresses share one overflow bucket. */
  maxBuckets: number
  now?: () => number
}

interface Bucket {
  count: number
  first: number
  bannedUntil: number
}

export interface FailureGuard {
  /** Milliseconds the address (or everyone) is still banned for; 0 when not banned. */
  bannedFor(ip: string): number
  /** Count one wrong key from the address; returns its bucket's count and ban. */
  fail(ip: string): { count: number; bannedMs: number }
}

const OVERFLOW = 'overflow'

/**
 * A brute-force guard for a secret an operator presents (the management key). It is told about
 * wrong keys only: a request without a key is not a guess, and the caller lets a right key through
 * without asking, so nobody can lock the key holder out.
 *
 * It is bounded without being evictable: addresses are bucketed (all of loopback as one, IPv6 by
 * /64), a full table sheds only buckets whose window and ban are over, and addresses past the
 * bound share one overflow bucket. Nothing an attacker sends can push a banned bucket out of the
 * table, and a global budget caps guesses from all buckets together.
 */
export function createFailureGuard(options: FailureGuardOptions): FailureGuard {
  const now = options.now ?? Date.now
  const buckets = new Map<string, Bucket>()
  const global: Bucket = { count: 0, first: 0, bannedUntil: 0 }

  const live = (b: Bucket, t: number): boolean => b.bannedUntil > t || t - b.first < options.windowMs
  const sweep = (t: number): void => {
    for (const [k, b] of buckets) if (!live(b, t)) buckets.delete(k)
  }
  const full = (): boolean => buckets.size >= options.maxBuckets - 1
  const bucketFor = (ip: string, t: number): Bucket => {
    const key = addressBucket(ip)
    const found = buckets.get(key)
    if (found) return found
    if (full()) sweep(t)
    const k = full() ? OVERFLOW : key
    let b = buckets.get(k)
    if (!b) buckets.set(k, (b = { count: 0, first: t, bannedUntil: 0 }))
    return b
  }
  const count = (b: Bucket, t: number, max: number): void => {
    if (b.bannedUntil <= t && t - b.first >= options.windowMs) {
      b.count = 0
      b.first = t
    }
    b.count++
    if (b.count >= max && b.bannedUntil <= t) b.bannedUntil = t + options.banMs
  }

  return {
    bannedFor(ip) {
      const t = now()
      const b = buckets.get(addressBucket(ip)) ?? (full() ? buckets.get(OVERFLOW) : undefined)
      return Math.max(0, (b?.bannedUntil ?? 0) - t, global.bannedUntil - t)
    },
    fail(ip) {
      const t = now()
      const b = bucketFor(ip, t)
      count(b, t, options.maxFailures)
      count(global, t, options.globalBudget)
      return { count: b.count, bannedMs: Math.max(0, b.bannedUntil - t, global.bannedUntil - t) }
    },
  }
}
