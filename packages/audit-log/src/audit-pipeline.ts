import TransportStream from 'winston-transport'
import { createLogger, format, type LogEntry, type Logger as WinstonLogger } from 'winston'
import type { ChainedFileWriter } from './writer'

const BODY = Symbol('gatehouse.audit.body')

interface AuditInfo {
  level: string
  message: string
  [BODY]: string
}

class AuditTransport extends TransportStream {
  constructor(
    private readonly writer: ChainedFileWriter,
    private readonly onReceived: () => void,
  ) {
    super({ level: 'info' })
  }

  override log(info: AuditInfo, next: () => void): void {
    this.writer.enqueue(info[BODY])
    this.onReceived()
    next()
  }
}

/** The winston logger between `log()` and the writer: its one transport queues each record body. */
export interface AuditPipeline {
  /** Hand one masked record body to winston. Throws only if winston does. */
  send(body: string): void
  /** Bodies winston has passed to the writer. */
  readonly received: number
  /** Resolves once `target` bodies have reached the writer. */
  drained(target: number): Promise<void>
  /** Detach the transport (after close). */
  remove(): void
}

export function createAuditPipeline(writer: ChainedFileWriter): AuditPipeline {
  let received = 0
  let waiters: Array<{ target: number; resolve: () => void }> = []
  const transport = new AuditTransport(writer, () => {
    received++
    if (waiters.length === 0) return
    const ready = waiters.filter((w) => w.target <= received)
    waiters = waiters.filter((w) => w.target > received)
    for (const w of ready) w.resolve()
  })
  const winston: WinstonLogger = createLogger({
    level: 'info',
    levels: { error: 0, warn: 1, info: 2 },
    format: format((info) => info)(),
    transports: [transport],
    exitOnError: false,
  })
  // winston re-emits transport errors; ours never emits one, but an unhandled 'error' must not crash.
  winston.on('error', () => undefined)
  return {
    send(body) {
      const info: AuditInfo = { level: 'info', message: 'security_event', [BODY]: body }
      winston.log(info as unknown as LogEntry)
    },
    get received() {
      return received
    },
    drained(target) {
      if (received >= target) return Promise.resolve()
      return new Promise((resolve) => waiters.push({ target, resolve }))
    },
    remove: () => winston.remove(transport),
  }
}
