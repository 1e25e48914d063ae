import type { GatehouseError } from '@gatehouse/core'
import { ActiveFile, errCode, type ChainCursor } from './active-file'
import { appendLineNow, buildBatch, rollback, type Batch, type BodyMaker, type RotationPolicy } from './batch'
import { RetentionKeeper, type RetentionPolicy } from './retention'
import { FlushWaiters } from './flush-waiters'
import { WriterHealth, type HealthHooks, type WriterStats } from './writer-health'

export type { BodyMaker } from './batch'
export type { WriterStats } from './writer-health'

const PKG = '@gatehouse/audit-log'
const MAX_RETRY_MS = 30_000

export interface WriterConfig extends RotationPolicy {
  file: string
  key: Buffer
  maxQueuedEvents: number
  retryIntervalMs: number
  /** Rotated files kept; undefined: every file is kept. */
  retention: RetentionPolicy | undefined
}

export interface WriterHooks extends HealthHooks {
  /** Receives the lines of each successful write, exactly as written (without the newline), in order. */
  onWritten?: (lines: string[]) => void
}

/**
 * Appends sealed lines to the active audit file, one writer per file.
 *
 * Events are queued in memory (bounded) and written in order once per event-loop turn, every line
 * queued in that turn in one write(2), so the caller never waits for the disk. The write is
 * synchronous, as pino's default destination is: it only copies into the page cache (the disk is
 * waited for by flush() alone, through fdatasync), and it spares each batch the round trip through
 * libuv's thread pool, whose wake-ups cost more than the write itself on a loaded machine.
 * The chain (seq, hash) is computed when a line is written, so a failed write leaves no gap: the
 * file is cut back to where it was, the chain state rolled back, and the same lines are tried
 * again later with exponential backoff. The file itself (open, resume, rotate, set aside) is
 * ActiveFile's; what goes into one write is batch.ts's; which rotated files expire is retention.ts's.
 */
export class ChainedFileWriter {
  private readonly health: WriterHealth

  private readonly file: ActiveFile
  private readonly cursor: ChainCursor = { seq: 0, prevHash: '', needAnchor: true, known: false }
  private readonly queue: Array<string | BodyMaker> = []
  private accepted = 0
  private persisted = 0
  private dirty = false
  private active = false
  private scheduled: NodeJS.Immediate | undefined
  private loopPromise: Promise<void> | undefined
  private retryTimer: NodeJS.Timeout | undefined
  private retryAttempt = 0
  private readonly retention: RetentionKeeper | undefined
  private readonly waiters = new FlushWaiters()
  private closed = false
  private closing: Promise<void> | undefined

  constructor(
    private readonly cfg: WriterConfig,
    private readonly hooks: WriterHooks,
  ) {
    this.file = new ActiveFile(cfg.file, cfg.key, hooks.logger)
    this.health = new WriterHealth(this.file.path, hooks)
    this.retention = cfg.retention && new RetentionKeeper(cfg.retention, hooks.logger, () => this.schedule())
    // Opens the file now (a failure is reported and retried) and applies retention at start.
    this.ready()
  }

  /** False while the file cannot be opened or written, and after close(). */
  get healthy(): boolean {
    return this.health.healthy
  }

  get stats(): Readonly<WriterStats> {
    return this.health.stats
  }

  /** Lines queued and not yet on disk. */
  get pending(): number {
    return this.queue.length
  }

  /** The last line written: its file, seq and hash (to keep outside the log, see verifyAuditLog's `expect`). */
  head(): { file: string; seq: number; hash: string } {
    return { file: this.file.path, seq: this.cursor.seq, hash: this.cursor.prevHash }
  }

  /** Queue one record body (JSON text without chain fields, or a BodyMaker). Never throws, never waits. */
  enqueue(body: string | BodyMaker): void {
    if (this.closed) return this.health.droppedAfterClose()
    if (this.queue.length >= this.cfg.maxQueuedEvents) return this.health.droppedBacklogFull(this.queue.length)
    this.queue.push(body)
    this.accepted++
    this.schedule()
  }

  /** Everything logged in this turn of the event loop goes out in one write, after the turn. */
  private schedule(): void {
    if (this.retryTimer === undefined && this.scheduled === undefined && !this.active) {
      this.scheduled = setImmediate(() => {
        this.scheduled = undefined
        this.kick()
      })
    }
  }

  /** Resolves when every event queued before the call is written and synced to disk. */
  flush(): Promise<void> {
    const target = this.accepted
    if (this.persisted >= target && !this.dirty && !this.active) return Promise.resolve()
    if (this.retryTimer !== undefined) {
      clearTimeout(this.retryTimer)
      this.retryTimer = undefined
    }
    const done = this.waiters.add(target)
    this.kick()
    return done
  }

  /** Stop taking events, write and sync what is queued, close the file. Rejects if events were lost. */
  close(): Promise<void> {
    if (this.closing) return this.closing
    this.closed = true
    this.closing = (async () => {
      let failure: unknown
      try {
        await this.flush()
      } catch (err) {
        failure = err
      }
      if (this.retryTimer !== undefined) {
        clearTimeout(this.retryTimer)
        this.retryTimer = undefined
      }
      this.retention?.stop()
      while (this.active && this.loopPromise) await this.loopPromise
      if (this.scheduled !== undefined) {
        clearImmediate(this.scheduled)
        this.scheduled = undefined
      }
      this.file.close()
      this.health.healthy = false
      const lost = this.queue.length
      if (lost > 0 || failure !== undefined) {
        this.queue.length = 0
        throw this.health.lostAtClose(lost, failure)
      }
    })()
    return this.closing
  }

  private kick(): void {
    if (this.active) return
    this.active = true
    this.loopPromise = this.loop()
  }

  /** The file is open and retention is done: ready to write. False (a retry is scheduled) when it cannot be opened. */
  private ready(): boolean {
    if (this.file.fd === undefined && !this.openFile()) {
      this.scheduleRetry()
      return false
    }
    if (this.retention?.isDue && this.file.regular) {
      const { path, size } = this.file
      const head = { seq: this.cursor.seq, hash: this.cursor.prevHash }
      this.health.stats.expired += this.retention.run({ path, size, head, writeNow: (body) => this.writeNow(body) })
    }
    return true
  }

  private async loop(): Promise<void> {
    let completed = false
    try {
      if (!this.ready()) return
      while (this.queue.length > 0) {
        if (!this.ready()) return
        const batch = buildBatch(this.queue, this.cfg.key, this.cursor, this.file, this.cfg, this.hooks.onWritten !== undefined)
        if (batch.taken > 0) {
          if (!this.writeBatch(batch)) {
            this.scheduleRetry()
            return
          }
          await this.settleWaiters()
        }
        if (batch.rotate) this.rotate()
      }
      await this.settleWaiters()
      completed = true
    } catch (err) {
      this.fail(err, 'write')
      this.scheduleRetry()
    } finally {
      this.active = false
    }
    if (completed && (this.queue.length > 0 || this.waiters.size > 0) && this.retryTimer === undefined) this.kick()
  }

  private writeBatch(batch: Batch): boolean {
    const failed = this.file.append(batch.buf)
    if (failed) {
      rollback(batch, this.cursor, this.file)
      // the next attempt is anchored anew if the file is left damaged
      if (failed.damaged) this.cursor.needAnchor = true
      this.fail(failed.error, 'write')
      return false
    }
    this.queue.splice(0, batch.taken)
    this.persisted += batch.taken
    this.health.stats.written += batch.count
    if (batch.count > 0) this.dirty = true
    this.recovered()
    if (batch.lines && batch.lines.length > 0) this.ship(batch.lines)
    return true
  }

  private ship(lines: string[]): void {
    try {
      this.hooks.onWritten?.(lines)
    } catch (err) {
      this.hooks.logger.error(`${PKG}: shipping written lines failed`, { error: errCode(err) })
    }
  }

  private settleWaiters(): Promise<void> {
    return this.waiters.settle(
      this.persisted,
      async () => {
        if (this.dirty) await this.file.sync()
        this.dirty = false
      },
      (err) => this.fail(err, 'sync'),
    )
  }

  private rotate(): void {
    const target = this.file.rotate()
    if (target === undefined) return
    this.dirty = false
    this.cursor.needAnchor = true
    this.health.stats.rotations++
    this.retention?.markDue()
    this.hooks.logger.info(`${PKG}: audit file rotated`, { file: target, seq: this.cursor.seq })
  }

  /** Open (or reopen) the active file and find where the chain stands. Never throws. */
  private openFile(): boolean {
    try {
      this.file.open(this.cursor)
    } catch (err) {
      this.fail(err, 'open')
      return false
    }
    this.retention?.markDue()
    this.recovered()
    return true
  }

  /** Seal, append and sync one line now (between batches). False when it could not be written (reported). */
  private writeNow(body: string): boolean {
    const done = appendLineNow(this.cfg.key, this.cursor, this.file, body)
    if ('error' in done) {
      this.fail(done.error, done.op)
      return false
    }
    this.health.stats.written++
    this.ship([done.line])
    return true
  }

  private scheduleRetry(): void {
    if (this.retryTimer !== undefined || this.closed) return
    const delay = Math.min(this.cfg.retryIntervalMs * 2 ** this.retryAttempt, Math.max(MAX_RETRY_MS, this.cfg.retryIntervalMs))
    this.retryAttempt = Math.min(this.retryAttempt + 1, 30)
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined
      this.kick()
    }, delay)
    this.retryTimer.unref()
  }

  private recovered(): void {
    this.retryAttempt = 0
    this.health.recovered()
  }

  private fail(err: unknown, op: string): GatehouseError {
    const e = this.health.failed(err, op, this.queue.length)
    this.waiters.rejectAll(e)
    return e
  }
}
