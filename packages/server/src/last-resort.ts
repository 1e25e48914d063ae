import type { Logger, Masker } from '@gatehouse/core'

/**
 * The gateway process's last resort: an exception or rejection that escaped every layer (a bug, or
 * a library's event handler throwing on input nobody foresaw) is logged, masked, and the process
 * keeps serving the other tenants. Every request path already answers its own errors; this is for
 * what slips past them, so one hostile request can never take the process down. Returns a function
 * that removes the handlers.
 */
export function installLastResort(logger: Logger, masker: Masker): () => void {
  let last = 0
  let suppressed = 0
  const report = (kind: string) => (err: unknown): void => {
    // At most one line a second, so a flood of the same failure cannot flood the log.
    const now = Date.now()
    if (now - last < 1000) {
      suppressed++
      return
    }
    last = now
    const stack = err instanceof Error ? (err.stack ?? err.message) : String(err)
    logger.error(`gatehouse: ${kind} caught by the last-resort handler; still serving`, {
      error: masker.text(stack),
      ...(suppressed ? { suppressed } : {}),
    })
    suppressed = 0
  }
  const onException = report('uncaught exception')
  const onRejection = report('unhandled rejection')
  process.on('uncaughtException', onException)
  process.on('unhandledRejection', onRejection)
  return () => {
    process.off('uncaughtException', onException)
    process.off('unhandledRejection', onRejection)
  }
}
