import { GatehouseError, isSecurityEventType, type SecurityEvent, type SecurityEventHandler } from '@gatehouse/core'
import { AuditLogErrorCodes } from './errors'
import { createSinkMasker } from './mask'
import { resolveAuditLogConfig, type AuditLogConfig, type AuditLogOptions } from './options'
import { createAuditPipeline } from './audit-pipeline'
import { createRefusalAggregator } from './aggregate'
import { auditRecordBody } from './record'
import { ChainedFileWriter, type BodyMaker } from './writer'
import { checkpointBody, createCheckpointSigner } from './checkpoint'
import type { AuditSinkStats } from './sinks/base'
import { createSink } from './sinks'

const PKG = '@gatehouse/audit-log'

/** Counters of one audit logger. */
export interface AuditLogStats {
  /** Events handed to log() that passed the filter and were queued. */
  accepted: number
  /** Lines written to disk. */
  written: number
  /** Events left out by the `events` filter. */
  filtered: number
  /** Repeated refusals counted into an aggregated line instead of written one by one. */
  aggregated: number
  /** Objects that were not security events (no known event_type). */
  rejected: number
  /** Events lost: backlog full while the file could not be written, or logged after close. */
  dropped: number
  /** Failed attempts to open, write or sync the file. */
  writeErrors: number
  /** Events queued and not yet on disk. */
  pending: number
  /** Files rotated. */
  rotations: number
  /** Rotated files deleted by `retention`. */
  expired: number
}

/** The audit log of one process. */
export interface AuditLogger {
  /** Write one event (filtered, masked, chained). Never throws and never waits: use it as `onEvent`. */
  readonly log: SecurityEventHandler
  /** Resolves when every event logged before the call is on disk (written and fsync'd). */
  flush(): Promise<void>
  /** Flush, then close the file; later events are dropped and reported. Rejects if events were lost. */
  close(): Promise<void>
  /** False while the audit file cannot be written (and after close). */
  readonly healthy: boolean
  stats(): AuditLogStats
  /** The last line written: file, seq and hash (keep them elsewhere to detect a cut-off tail). */
  head(): { file: string; seq: number; hash: string }
  /** Counters of each sink, in the order of `sinks`. */
  sinkStats(): AuditSinkStats[]
  /** Write a signed checkpoint now (to the file and every sink), unless nothing was written since the last one. */
  checkpoint(): void
}

/** Log at error and pass to onWriteError; a logger or callback that throws does not stop the report. */
function createReporter(config: AuditLogConfig): (err: GatehouseError, meta: Record<string, unknown>) => void {
  const logError = (message: string, meta: Record<string, unknown>): void => {
    try {
      config.logger.error(message, meta)
    } catch {
      // a failing logger must not stop the report
    }
  }
  return (err, meta) => {
    logError(err.message, { code: err.code, ...meta })
    try {
      config.onWriteError?.(err)
    } catch (cbErr) {
      logError(`${PKG}: onWriteError threw`, { error: cbErr instanceof Error ? cbErr.message : String(cbErr) })
    }
  }
}

/** The writer of the active file, shipping each written line to the sinks. */
function createWriter(
  config: AuditLogConfig,
  report: ReturnType<typeof createReporter>,
  sinks: ReadonlyArray<{ push(lines: string[]): void }>,
): ChainedFileWriter {
  const hooks = { report, logger: config.logger }
  const { file, key, maxSize, daily, maxFileAgeMs, maxQueuedEvents, retryIntervalMs, retention } = config
  return new ChainedFileWriter(
    { file, key, maxSize, daily, maxFileAgeMs, maxQueuedEvents, retryIntervalMs, retention },
    sinks.length === 0
      ? hooks
      : {
          ...hooks,
          onWritten: (lines: string[]): void => {
            for (const sink of sinks) sink.push(lines)
          },
        },
  )
}

/**
 * The checkpoint record, made when the writer reaches it, so it names the line just before it;
 * skipped when nothing was written since the last one.
 */
function createCheckpointMaker(config: AuditLogConfig): BodyMaker {
  const sign = createCheckpointSigner(config.key, config.checkpoints.signingKey)
  const logId = config.checkpoints.logId
  let checkpointLineSeq = -1
  return (seq, hash) => {
    if (seq === 0 || seq === checkpointLineSeq) return undefined
    checkpointLineSeq = seq + 1
    return checkpointBody(sign({ ...(logId === undefined ? {} : { log: logId }), seq, hash, time: new Date().toISOString() }))
  }
}

/**
 * Create the audit logger: a winston logger whose one transport appends hash-chained JSON lines
 * to `file`, rotating by size, UTC day and age, and deleting rotated files past `retention`.
 * Validates options and opens the file now; a file that cannot be opened does not throw: it is
 * reported and `healthy` is false until it can.
 */
export function createAuditLogger(options: AuditLogOptions): AuditLogger {
  const config = resolveAuditLogConfig(options)
  const mask = createSinkMasker(config.knownSecrets)
  const report = createReporter(config)
  const sinks = config.sinks.map((c) => createSink(c, { report, logger: config.logger }))
  const writer = createWriter(config, report, sinks)
  const makeCheckpoint = createCheckpointMaker(config)
  const checkpointTimer =
    config.checkpoints.enabled && config.checkpoints.intervalMs > 0
      ? setInterval(() => writer.enqueue(makeCheckpoint), config.checkpoints.intervalMs)
      : undefined
  checkpointTimer?.unref()
  const pipeline = createAuditPipeline(writer)
  const logFailure = (err: unknown): void => {
    try {
      config.logger.error(`${PKG}: an event could not be logged`, { error: mask.text(err instanceof Error ? err.message : String(err)) })
    } catch {
      // nothing more to do
    }
  }

  let accepted = 0
  let filtered = 0
  let rejected = 0
  let closed = false
  let lostInPipeline = 0
  let droppedAfterClose = 0

  const aggregator = config.aggregateIntervalMs > 0 ? createRefusalAggregator(config.aggregateIntervalMs, 10_000) : undefined

  /** Mask, chain and queue one event that passed the filters. */
  const write = (event: SecurityEvent): void => {
    let handedOver = false
    try {
      const body = auditRecordBody(event, mask, config.maxLineBytes)
      if (body === undefined) {
        rejected++
        return
      }
      accepted++
      handedOver = true
      pipeline.send(body)
    } catch (err) {
      if (handedOver) lostInPipeline++
      logFailure(err)
    }
  }

  const log: SecurityEventHandler = (event: SecurityEvent): void => {
    try {
      if (event === null || typeof event !== 'object' || !isSecurityEventType(event.event_type)) {
        rejected++
        return
      }
      if (!config.events.has(event.event_type)) {
        filtered++
        return
      }
      if (closed) {
        droppedAfterClose++
        if (droppedAfterClose === 1) {
          report(
            new GatehouseError(AuditLogErrorCodes.GH_AUDIT_CLOSED, `${PKG}: an event arrived after close(); it was not written`, 503),
            { file: writer.head().file },
          )
        }
        return
      }
      if (!aggregator) return write(event)
      for (const e of aggregator.take(event)) write(e)
    } catch (err) {
      logFailure(err)
    }
  }

  // Windows of folded refusals end on this timer; flush() and close() end them all.
  const drain = (all: boolean): void => {
    if (aggregator) for (const e of aggregator.drain(all)) write(e)
  }
  const drainTimer = aggregator ? setInterval(() => drain(false), config.aggregateIntervalMs) : undefined
  drainTimer?.unref()

  const pipelineDrained = (): Promise<void> => pipeline.drained(accepted - lostInPipeline)

  const flush = async (): Promise<void> => {
    if (!closed) drain(true)
    await pipelineDrained()
    await writer.flush()
  }

  let closing: Promise<void> | undefined
  const close = (): Promise<void> => {
    if (closing) return closing
    drain(true)
    if (drainTimer) clearInterval(drainTimer)
    if (checkpointTimer) clearInterval(checkpointTimer)
    closed = true
    closing = (async () => {
      await pipelineDrained()
      if (config.checkpoints.enabled) writer.enqueue(makeCheckpoint)
      try {
        await writer.close()
      } finally {
        // The sinks get what the writer wrote, the closing checkpoint included, for closeTimeout at most.
        await Promise.all(sinks.map((sink) => sink.close()))
        pipeline.remove()
        const head = writer.head()
        config.logger.info(`${PKG}: audit log closed`, { file: head.file, seq: head.seq, hash: head.hash })
      }
    })()
    return closing
  }

  return Object.freeze({
    log,
    flush,
    close,
    get healthy(): boolean {
      return !closed && writer.healthy
    },
    stats: (): AuditLogStats => ({
      accepted,
      written: writer.stats.written,
      filtered,
      rejected,
      dropped: writer.stats.dropped + lostInPipeline + droppedAfterClose,
      aggregated: aggregator?.folded ?? 0,
      writeErrors: writer.stats.writeErrors,
      pending: writer.pending + Math.max(0, accepted - lostInPipeline - pipeline.received),
      rotations: writer.stats.rotations,
      expired: writer.stats.expired,
    }),
    head: () => writer.head(),
    sinkStats: () => sinks.map((sink) => sink.stats()),
    checkpoint: () => {
      if (!closed) writer.enqueue(makeCheckpoint)
    },
  })
}
