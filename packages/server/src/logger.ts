import type { Logger, Masker } from '@gatehouse/core'

const LEVELS = { error: 0, warn: 1, info: 2, debug: 3 } as const
export type LogLevel = keyof typeof LEVELS

/**
 * The server's application log: one JSON object a line on stderr, every field passed through the
 * masker, nothing below the configured level.
 */
export function createAppLogger(level: LogLevel, masker: Masker, write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const max = LEVELS[level]
  const log =
    (lvl: LogLevel) =>
    (message: string, meta?: Record<string, unknown>): void => {
      if (LEVELS[lvl] > max) return
      const line = masker.value({ timestamp: new Date().toISOString(), level: lvl, message, ...(meta ?? {}) })
      write(`${JSON.stringify(line)}\n`)
    }
  return { error: log('error'), warn: log('warn'), info: log('info'), debug: log('debug') }
}
