/** Resolve after `ms` milliseconds (the timer is not left behind: it fires and is gone). */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Resolve on the next turn of the event loop (after the I/O callbacks already queued). */
export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

export interface WaitForOptions {
  /** Milliseconds between two checks. @default 10 */
  every?: number
  /** What is awaited, for the error message. @default the source of `check` */
  what?: string
}

/**
 * Poll `check` (sync or async) every `every` ms until it returns true; resolve with the milliseconds
 * that took. Bounded: after `ms` (a check that hangs included) it rejects naming what never came.
 */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  ms = 5000,
  options: WaitForOptions = {},
): Promise<number> {
  const every = options.every ?? 10
  const started = Date.now()
  const fail = (): Error =>
    new Error(`waitFor: ${options.what ?? check.toString()} still not true after ${ms} ms`)
  for (;;) {
    const left = ms - (Date.now() - started)
    if (left < 0) throw fail()
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), left)
    })
    try {
      const result = await Promise.race([Promise.resolve().then(check), timedOut])
      if (result === 'timeout') throw fail()
      if (result) return Date.now() - started
    } finally {
      clearTimeout(timer)
    }
    await sleep(Math.min(every, Math.max(0, ms - (Date.now() - started))))
  }
}
