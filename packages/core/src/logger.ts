/** The logger libraries accept. A winston logger fits it; the default does nothing. */
export interface Logger {
  error(message: string, meta?: Record<string, unknown>): void
  warn(message: string, meta?: Record<string, unknown>): void
  info(message: string, meta?: Record<string, unknown>): void
  debug(message: string, meta?: Record<string, unknown>): void
}

const noop = (): void => undefined

export const noopLogger: Logger = Object.freeze({ error: noop, warn: noop, info: noop, debug: noop })

export const isLogger = (v: unknown): v is Logger =>
  typeof v === 'object' &&
  v !== null &&
  ['error', 'warn', 'info', 'debug'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function')
