import { GatehouseError, type Logger } from '@gatehouse/core'
import { errCode } from './active-file'
import { AuditLogErrorCodes } from './errors'

const PKG = '@gatehouse/audit-log'

export interface WriterStats {
  /** Lines on disk (written by this writer). */
  written: number
  /** Events lost: backlog full, logged after close, or still queued when close() gave up. */
  dropped: number
  /** Failed attempts to open, write or sync the file. */
  writeErrors: number
  /** Files rotated. */
  rotations: number
  /** Rotated files deleted by retention. */
  expired: number
}

export interface HealthHooks {
  /** A write-side failure: logged at error and passed to onWriteError. */
  report(err: GatehouseError, meta: Record<string, unknown>): void
  logger: Logger
}

/**
 * The writer's health and counters, and how each failure is reported: once per episode for
 * dropped events, every time for a failed open, write or sync, and a warning on recovery.
 */
export class WriterHealth {
  healthy = true
  readonly stats: WriterStats = { written: 0, dropped: 0, writeErrors: 0, rotations: 0, expired: 0 }
  private dropReported = false
  private closedReported = false

  constructor(
    private readonly file: string,
    private readonly hooks: HealthHooks,
  ) {}

  /** An event arrived after close(): counted, reported the first time. */
  droppedAfterClose(): void {
    this.stats.dropped++
    if (this.closedReported) return
    this.closedReported = true
    this.hooks.report(
      new GatehouseError(AuditLogErrorCodes.GH_AUDIT_CLOSED, `${PKG}: an event arrived after close(); it was not written`, 503),
      { file: this.file },
    )
  }

  /** The backlog is full: the event is counted, the episode reported once. */
  droppedBacklogFull(pending: number): void {
    this.stats.dropped++
    if (this.dropReported) return
    this.dropReported = true
    this.hooks.report(
      new GatehouseError(
        AuditLogErrorCodes.GH_AUDIT_BACKLOG_FULL,
        `${PKG}: ${pending} events are waiting to be written; new events are dropped until the file can be written`,
        503,
      ),
      { file: this.file, pending },
    )
  }

  /** A failed open, write or sync: counted, reported; returns the error the waiters get. */
  failed(err: unknown, op: string, pending: number): GatehouseError {
    this.stats.writeErrors++
    this.healthy = false
    const e =
      err instanceof GatehouseError
        ? err
        : new GatehouseError(
            AuditLogErrorCodes.GH_AUDIT_WRITE_FAILED,
            `${PKG}: cannot ${op} the audit file ${this.file} (${errCode(err)})`,
            503,
            { cause: err },
          )
    this.hooks.report(e, { file: this.file, op, pending })
    return e
  }

  /** A write or open succeeded: healthy again (announced when it was not). */
  recovered(): void {
    if (this.healthy) return
    this.healthy = true
    this.dropReported = false
    this.hooks.logger.warn(`${PKG}: the audit file is writable again`, { file: this.file, dropped: this.stats.dropped })
  }

  /** The error close() rejects with when events were lost. */
  lostAtClose(lost: number, failure: unknown): GatehouseError {
    this.stats.dropped += lost
    return new GatehouseError(
      AuditLogErrorCodes.GH_AUDIT_WRITE_FAILED,
      `${PKG}: ${lost} event(s) could not be written before close (${errCode((failure as Error | undefined)?.cause ?? failure)})`,
      503,
      { cause: failure },
    )
  }
}
