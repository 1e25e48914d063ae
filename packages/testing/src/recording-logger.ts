import type { Logger } from '@gatehouse/core'

/** A Logger that keeps every call, for assertions on what was logged (and what was not). */
export interface RecordingLogger extends Logger {
  calls: Array<{ level: string; message: string; meta?: Record<string, unknown> }>
  /** Every call as one JSON string: to check that a secret appears nowhere. */
  text(): string
}

export function recordingLogger(): RecordingLogger {
  const calls: RecordingLogger['calls'] = []
  const at =
    (level: string) =>
    (message: string, meta?: Record<string, unknown>): void => {
      calls.push(meta === undefined ? { level, message } : { level, message, meta })
    }
  return { calls, text: () => JSON.stringify(calls), error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') }
}
