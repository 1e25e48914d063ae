import TransportStream from 'winston-transport'
import { createLogger, format, type Logger as WinstonLogger } from 'winston'
import { createMasker, safeStringify } from '@gatehouse/core'
import { resolveAppLoggerConfig, type AppLoggerOptions } from './app-options'

/** winston's formatted-line key (triple-beam's MESSAGE). */
const MESSAGE: unique symbol = Symbol.for('message') as never

const TO_STDERR = new Set(['error', 'warn'])

interface LogInfo {
  level: string
  message: unknown
  [key: string]: unknown
  [MESSAGE]?: string
}

class StdStreamsTransport extends TransportStream {
  constructor(
    private readonly stdout: NodeJS.WritableStream,
    private readonly stderr: NodeJS.WritableStream,
  ) {
    super()
  }

  override log(info: LogInfo, next: () => void): void {
    const out = TO_STDERR.has(info.level) ? this.stderr : this.stdout
    try {
      out.write(`${info[MESSAGE] ?? ''}\n`)
    } catch {
      // a closed stdout must not take the process down
    }
    next()
  }
}

/**
 * The application logger: winston, one JSON object a line (`{"timestamp","level","message",…}`),
 * info and below to stdout, warn and error to stderr, nothing under `level`. Every field of every
 * line, the message included, goes through the same masking function as the audit log, and line
 * breaks in any value stay escaped inside the line. Fits the `Logger` that every Gatehouse
 * package takes.
 */
export function createAppLogger(options: AppLoggerOptions = {}): WinstonLogger {
  const config = resolveAppLoggerConfig(options)
  // The same masker as the audit log's: credential formats, sensitive field names, configured secrets.
  const mask = createMasker({ knownSecrets: config.knownSecrets })
  const maskedJson = format((info) => {
    const { level, message, ...rest } = info as LogInfo
    const fields: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(rest)) {
      if (k !== 'timestamp' && v !== undefined) fields[k] = v
    }
    const line = mask.value({
      timestamp: new Date().toISOString(),
      level,
      message: typeof message === 'string' ? message : safeStringify(message),
      ...fields,
    })
    ;(info as LogInfo)[MESSAGE] = safeStringify(line)
    return info
  })
  const logger = createLogger({
    level: config.level,
    defaultMeta: config.defaultMeta,
    format: maskedJson(),
    transports: [new StdStreamsTransport(config.stdout, config.stderr)],
    exitOnError: false,
  })
  logger.on('error', () => undefined)
  return logger
}
