import { randomBytes } from 'node:crypto'
import type { AlertHit, AlertStore } from './options'

interface Window {
  times: number[]
  firedAt: number | undefined
  windowMs: number
}

/**
 * Alert windows in memory, for one instance. Each (rule, subject) keeps at most `min` timestamps,
 * and at most `maxSubjects` subjects are tracked (the least recently hit is dropped first), so a
 * flood from many addresses cannot grow it without bound. Expired windows are swept every minute.
 */
export class MemoryAlertStore implements AlertStore {
  private readonly windows = new Map<string, Window>()
  private readonly sweeper: NodeJS.Timeout

  constructor(private readonly options: { maxSubjects?: number } = {}) {
    this.sweeper = setInterval(() => this.sweep(Date.now()), 60_000)
    this.sweeper.unref()
  }

  hit(ruleId: string, subject: string, now: number, windowMs: number, min: number): AlertHit {
    const key = `${ruleId}\u0000${subject}`
    let w = this.windows.get(key)
    if (w) this.windows.delete(key)
    else w = { times: [], firedAt: undefined, windowMs }
    this.windows.set(key, w) // most recently hit last
    w.windowMs = windowMs
    const from = now - windowMs
    w.times = w.times.filter((t) => t > from)
    w.times.push(now)
    if (w.times.length > min) w.times.splice(0, w.times.length - min)
    let fire = false
    if (w.times.length >= min && (w.firedAt === undefined || now - w.firedAt >= windowMs)) {
      w.firedAt = now
      fire = true
    }
    const max = this.options.maxSubjects ?? 10_000
    while (this.windows.size > max) {
      const oldest = this.windows.keys().next().value as string
      this.windows.delete(oldest)
    }
    return { count: w.times.length, fire }
  }

  /** Windows tracked now (for tests and diagnostics). */
  get size(): number {
    return this.windows.size
  }

  private sweep(now: number): void {
    for (const [key, w] of this.windows) {
      const live = w.times.some((t) => t > now - w.windowMs) || (w.firedAt !== undefined && now - w.firedAt < w.windowMs)
      if (!live) this.windows.delete(key)
    }
  }

  shutdown(): Promise<void> {
    clearInterval(this.sweeper)
    this.windows.clear()
    return Promise.resolve()
  }
}

/** The part of an ioredis client this store uses. */
export interface RedisEvalClient {
  eval(script: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>
}

// KEYS[1] the window (sorted set of occurrences scored by time), KEYS[2] the fired marker.
// ARGV: now, windowMs, member, min. Trims the window, adds the occurrence, keeps at most `min`
// members, and sets the marker (NX, expiring with the window) when the count reaches `min`:
// exactly one hit per window, across every gateway instance, gets fire = 1.
const HIT_SCRIPT = `
local now = tonumber(ARGV[1])
local win = tonumber(ARGV[2])
local min = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - win)
redis.call('ZADD', KEYS[1], now, ARGV[3])
local n = redis.call('ZCARD', KEYS[1])
if n > min then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - min - 1)
  n = min
end
redis.call('PEXPIRE', KEYS[1], win)
local fire = 0
if n >= min then
  if redis.call('SET', KEYS[2], now, 'PX', win, 'NX') then fire = 1 end
end
return {n, fire}
`

/**
 * Alert windows in Redis, shared by every gateway instance: one sorted set per rule and subject
 * (`<prefix>alert:<rule>:<subject>`) and a marker key that makes a rule fire once per window
 * across all instances. Keys expire with their window. The client is the caller's: `shutdown()`
 * does not close it.
 */
export class RedisAlertStore implements AlertStore {
  private readonly prefix: string
  private readonly instance = randomBytes(6).toString('hex')
  private counter = 0

  constructor(private readonly options: { client: RedisEvalClient; prefix?: string }) {
    this.prefix = options.prefix ?? 'gatehouse:'
  }

  async hit(ruleId: string, subject: string, now: number, windowMs: number, min: number): Promise<AlertHit> {
    const member = `${now}:${this.instance}:${this.counter++}`
    const result = (await this.options.client.eval(
      HIT_SCRIPT,
      2,
      `${this.prefix}alert:${ruleId}:${subject}`,
      `${this.prefix}alert-fired:${ruleId}:${subject}`,
      now,
      windowMs,
      member,
      min,
    )) as [number, number]
    return { count: Number(result[0]), fire: Number(result[1]) === 1 }
  }

  shutdown(): Promise<void> {
    return Promise.resolve()
  }
}
