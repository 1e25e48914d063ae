import type { jest as JestObject } from '@jest/globals'

// jest hands every module it loads a `jest` object of its own, this one included; the import above
// is for the type only, so that loading this package outside jest (the examples) does not throw.
declare const jest: typeof JestObject

/** Where a fake clock starts unless told: a fixed instant, so dates in a test are the same on every run. */
export const FAKE_CLOCK_START = new Date('2026-01-01T00:00:00.000Z')

export interface FakeClockOptions {
  /** Where the clock starts. @default FAKE_CLOCK_START */
  now?: Date | number
  /**
   * true: `Date`, `setTimeout`/`setInterval` (and `performance`, `process.hrtime`) are fake, and a timer
   * fires only when `advance()` reaches it. false: only `Date` is fake; timers run on real time, for a
   * test that steps over a cool-down between real round trips. Either way `process.nextTick`,
   * `setImmediate` and `queueMicrotask` stay real, so sockets, Redis, PostgreSQL and files still work.
   * @default true
   */
  timers?: boolean
}

export interface FakeClock {
  /** The fake time, in epoch milliseconds. */
  now(): number
  /**
   * Move the clock forward `ms`, running each timer that falls due on the way (letting the promises
   * it starts settle before the next), then one real turn of the event loop, so I/O callbacks already
   * queued and the promises waiting on them run before the test looks. Libraries' timers are fake
   * too (pg's connection timeout, ioredis's commandTimeout): let the I/O in flight finish first
   * (`until()`), or a long step fires them.
   */
  advance(ms: number): Promise<void>
  /**
   * Wait on real event-loop turns, without moving the clock, until `check` is true: for the I/O a
   * timer started (a Redis or PostgreSQL round trip, a file written). `waitFor` cannot, its own
   * timers being fake. Bounded by `ms` of real time, after which it rejects naming `what`.
   */
  until(check: () => boolean | Promise<boolean>, ms?: number, what?: string): Promise<void>
  /** Jump to `time` without running the timers due in between, as a changed host clock would. */
  set(time: Date | number): void
  /** Put the real timers back (idempotent). Call it in `afterEach`, so a failed test does not leave the clock fake. */
  restore(): void
}

// Never faked: what Node's sockets, streams, ioredis, pg and fs run their callbacks on.
const ALWAYS_REAL = ['nextTick', 'setImmediate', 'clearImmediate', 'queueMicrotask'] as const
const REAL_TIMERS = ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'hrtime', 'performance'] as const

const realTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/**
 * Make the clock fake with jest's modern fake timers: `const clock = fakeClock()`, then
 * `await clock.advance(60_000)` where a test would have slept through a window or a TTL, and
 * `afterEach(() => clock.restore())`.
 */
export function fakeClock(options: FakeClockOptions = {}): FakeClock {
  const timers = options.timers ?? true
  jest.useFakeTimers({
    now: options.now ?? FAKE_CLOCK_START,
    doNotFake: timers ? [...ALWAYS_REAL] : [...ALWAYS_REAL, ...REAL_TIMERS],
  })
  return {
    now: () => jest.now(),
    advance: async (ms) => {
      if (!(ms >= 0)) throw new RangeError(`fakeClock: advance(${ms}): the clock only moves forward`)
      await jest.advanceTimersByTimeAsync(ms)
      await realTurn()
    },
    until: async (check, ms = 5000, what = check.toString()) => {
      const deadline = jest.getRealSystemTime() + ms
      while (!(await check())) {
        if (jest.getRealSystemTime() > deadline) throw new Error(`fakeClock.until: ${what} still not true after ${ms} ms`)
        await realTurn()
      }
    },
    set: (time) => jest.setSystemTime(time),
    restore: () => jest.useRealTimers(),
  }
}
