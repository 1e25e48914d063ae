import {
  closeSync,
  fdatasync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  renameSync,
  writeSync,
} from 'node:fs'
import { dirname, resolve } from 'node:path'
import { GatehouseError, type Logger } from '@gatehouse/core'
import { lineVerifies, parseChainedLine, sealLine } from './chain'
import { AuditLogErrorCodes } from './errors'
import { lastChainedLineOf, newestRotatedFile, nextRotatedName, readTail, utcDay } from './files'

const PKG = '@gatehouse/audit-log'
const MAX_BATCH_BYTES = 1024 * 1024
const MAX_RETRY_MS = 30_000
const ROTATION_BACKOFF_MS = 60_000

export interface WriterConfig {
  file: string
  key: Buffer
  /** 0: no size rotation. */
  maxSize: number
  daily: boolean
  maxQueuedEvents: number
  retryIntervalMs: number
}

export interface WriterHooks {
  /** A write-side failure: logged at error and passed to onWriteError. */
  report(err: GatehouseError, meta: Record<string, unknown>): void
  logger: Logger
  /** Receives the lines of each successful write, exactly as written (without the newline), in order. */
  onWritten?: (lines: string[]) => void
}

/**
 * A record whose body depends on where the chain stands when it is written (a checkpoint): called
 * with the seq and hash of the line before it; undefined leaves it out.
 */
export type BodyMaker = (seq: number, hash: string) => string | undefined

export interface WriterStats {
  /** Lines on disk (written by this writer). */
  written: number
  /** Events lost: backlog full, logged after close, or still queued when close() gave up. */
  dropped: number
  /** Failed attempts to open, write or sync the file. */
  writeErrors: number
  /** Files rotated. */
  rotations: number
}

interface Waiter {
  target: number
  resolve: () => void
  reject: (err: Error) => void
}

interface Batch {
  buf: Buffer
  /** Lines in `buf`. */
  count: number
  /** Queue entries consumed (a BodyMaker may yield no line). */
  taken: number
  lines: string[] | undefined
  rotate: boolean
  saved: { seq: number; prevHash: string; needAnchor: boolean; fileDay: string }
}

const syncAsync = (fd: number): Promise<void> =>
  new Promise((resolvePromise, reject) => {
    fdatasync(fd, (err) => (err ? reject(err) : resolvePromise()))
  })

const errCode = (err: unknown): string =>
  (err as NodeJS.ErrnoException | undefined)?.code ?? (err instanceof Error ? err.message : String(err))

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
 * again later with exponential backoff.
 */
export class ChainedFileWriter {
  healthy = true
  readonly stats: WriterStats = { written: 0, dropped: 0, writeErrors: 0, rotations: 0 }

  private readonly file: string
  private fd: number | undefined
  private regular = true
  private size = 0
  private fileDay = utcDay(Date.now())
  private seq = 0
  private prevHash = ''
  private needAnchor = true
  private chainKnown = false
  private readonly queue: Array<string | BodyMaker> = []
  private accepted = 0
  private persisted = 0
  private dirty = false
  private active = false
  private scheduled: NodeJS.Immediate | undefined
  private loopPromise: Promise<void> | undefined
  private retryTimer: NodeJS.Timeout | undefined
  private retryAttempt = 0
  private rotationBlockedUntil = 0
  private waiters: Waiter[] = []
  private closed = false
  private closing: Promise<void> | undefined
  private dropReported = false
  private closedReported = false

  constructor(
    private readonly cfg: WriterConfig,
    private readonly hooks: WriterHooks,
  ) {
    this.file = resolve(cfg.file)
    if (!this.openFile()) this.scheduleRetry()
  }

  /** Lines queued and not yet on disk. */
  get pending(): number {
    return this.queue.length
  }

  /** The last line written: its file, seq and hash (to keep outside the log, see verifyAuditLog's `expect`). */
  head(): { file: string; seq: number; hash: string } {
    return { file: this.file, seq: this.seq, hash: this.prevHash }
  }

  /** Queue one record body (JSON text without chain fields, or a BodyMaker). Never throws, never waits. */
  enqueue(body: string | BodyMaker): void {
    if (this.closed) {
      this.stats.dropped++
      if (!this.closedReported) {
        this.closedReported = true
        this.hooks.report(
          new GatehouseError(AuditLogErrorCodes.GH_AUDIT_CLOSED, `${PKG}: an event arrived after close(); it was not written`, 503),
          { file: this.file },
        )
      }
      return
    }
    if (this.queue.length >= this.cfg.maxQueuedEvents) {
      this.stats.dropped++
      if (!this.dropReported) {
        this.dropReported = true
        this.hooks.report(
          new GatehouseError(
            AuditLogErrorCodes.GH_AUDIT_BACKLOG_FULL,
            `${PKG}: ${this.queue.length} events are waiting to be written; new events are dropped until the file can be written`,
            503,
          ),
          { file: this.file, pending: this.queue.length },
        )
      }
      return
    }
    this.queue.push(body)
    this.accepted++
    // Everything logged in this turn of the event loop goes out in one write, after the turn.
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
    return new Promise<void>((resolvePromise, reject) => {
      this.waiters.push({ target, resolve: resolvePromise, reject })
      this.kick()
    })
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
      while (this.active && this.loopPromise) await this.loopPromise
      if (this.scheduled !== undefined) {
        clearImmediate(this.scheduled)
        this.scheduled = undefined
      }
      if (this.fd !== undefined) {
        try {
          closeSync(this.fd)
        } catch {
          // closing a descriptor only fails if it is already gone
        }
        this.fd = undefined
      }
      this.healthy = false
      const lost = this.queue.length
      if (lost > 0 || failure !== undefined) {
        this.stats.dropped += lost
        this.queue.length = 0
        throw new GatehouseError(
          AuditLogErrorCodes.GH_AUDIT_WRITE_FAILED,
          `${PKG}: ${lost} event(s) could not be written before close (${errCode((failure as Error | undefined)?.cause ?? failure)})`,
          503,
          { cause: failure },
        )
      }
    })()
    return this.closing
  }

  private kick(): void {
    if (this.active) return
    this.active = true
    this.loopPromise = this.loop()
  }

  private async loop(): Promise<void> {
    let completed = false
    try {
      if (this.fd === undefined && !this.openFile()) {
        this.scheduleRetry()
        return
      }
      while (this.queue.length > 0) {
        if (this.fd === undefined && !this.openFile()) {
          this.scheduleRetry()
          return
        }
        const batch = this.buildBatch()
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
    if (completed && (this.queue.length > 0 || this.waiters.length > 0) && this.retryTimer === undefined) this.kick()
  }

  private buildBatch(): Batch {
    const saved = { seq: this.seq, prevHash: this.prevHash, needAnchor: this.needAnchor, fileDay: this.fileDay }
    const parts: Buffer[] = []
    const lines = this.hooks.onWritten ? [] as string[] : undefined
    let bytes = 0
    let count = 0
    let taken = 0
    let rotate = false
    const now = Date.now()
    const today = utcDay(now)
    const canRotate = this.regular && now >= this.rotationBlockedUntil
    for (const entry of this.queue) {
      const used = this.size + bytes
      if (canRotate && used > 0 && this.cfg.daily && today !== this.fileDay) {
        rotate = true
        break
      }
      const body = typeof entry === 'string' ? entry : entry(this.seq, this.prevHash)
      if (body === undefined) {
        taken++
        continue
      }
      const { line, hash } = sealLine(this.cfg.key, body, this.seq + 1, this.prevHash, this.needAnchor)
      const buf = Buffer.from(`${line}\n`, 'utf8')
      if (canRotate && used > 0 && this.cfg.maxSize > 0 && used + buf.length > this.cfg.maxSize) {
        rotate = true
        break
      }
      if (used === 0) this.fileDay = today
      this.seq += 1
      this.prevHash = hash
      this.needAnchor = false
      parts.push(buf)
      lines?.push(line)
      bytes += buf.length
      count++
      taken++
      if (bytes >= MAX_BATCH_BYTES) break
    }
    return { buf: Buffer.concat(parts, bytes), count, taken, lines, rotate, saved }
  }

  private writeBatch(batch: Batch): boolean {
    const fd = this.fd!
    let off = 0
    try {
      while (off < batch.buf.length) off += writeSync(fd, batch.buf, off, batch.buf.length - off)
    } catch (err) {
      this.seq = batch.saved.seq
      this.prevHash = batch.saved.prevHash
      this.needAnchor = batch.saved.needAnchor
      this.fileDay = batch.saved.fileDay
      if (off > 0 && this.regular) {
        // A partial batch would leave half a line: cut the file back to where the batch began.
        try {
          ftruncateSync(fd, fstatSync(fd).size - off)
        } catch {
          // the next attempt is anchored anew if the file is left damaged
          this.needAnchor = true
        }
      }
      this.fail(err, 'write')
      return false
    }
    this.queue.splice(0, batch.taken)
    this.size += batch.buf.length
    this.persisted += batch.taken
    this.stats.written += batch.count
    if (batch.count > 0) this.dirty = true
    this.recovered()
    if (batch.lines && batch.lines.length > 0) {
      try {
        this.hooks.onWritten!(batch.lines)
      } catch (err) {
        this.hooks.logger.error(`${PKG}: shipping written lines failed`, { error: errCode(err) })
      }
    }
    return true
  }

  private async settleWaiters(): Promise<void> {
    const ready = this.waiters.filter((w) => w.target <= this.persisted)
    if (ready.length === 0) return
    this.waiters = this.waiters.filter((w) => w.target > this.persisted)
    try {
      if (this.dirty && this.fd !== undefined && this.regular) await syncAsync(this.fd)
      this.dirty = false
      for (const w of ready) w.resolve()
    } catch (err) {
      const e = this.fail(err, 'sync')
      for (const w of ready) w.reject(e)
    }
  }

  private rotate(): void {
    const fd = this.fd
    if (fd === undefined) return
    const target = nextRotatedName(this.file, this.fileDay)
    try {
      fsyncSync(fd)
      renameSync(this.file, target)
    } catch (err) {
      this.rotationBlockedUntil = Date.now() + ROTATION_BACKOFF_MS
      this.hooks.logger.error(`${PKG}: cannot rotate the audit file; writing on to it`, {
        file: this.file,
        error: errCode(err),
      })
      return
    }
    try {
      closeSync(fd)
    } catch {
      // already closed
    }
    this.fd = undefined
    this.size = 0
    this.dirty = false
    this.needAnchor = true
    this.fileDay = utcDay(Date.now())
    this.stats.rotations++
    this.hooks.logger.info(`${PKG}: audit file rotated`, { file: target, seq: this.seq })
  }

  /** Open (or reopen) the active file and find where the chain stands. Never throws. */
  private openFile(): boolean {
    let fd: number | undefined
    try {
      mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 })
      fd = openSync(this.file, 'a+', 0o600)
      const st = fstatSync(fd)
      this.fd = fd
      this.regular = st.isFile()
      this.size = this.regular ? st.size : 0
      if (this.regular) this.resume(st.size, st.mtimeMs)
      else {
        // A device or pipe: nothing to resume from; each opening starts an anchored stretch.
        this.chainKnown = true
        this.needAnchor = true
      }
      this.recovered()
      return true
    } catch (err) {
      const open = this.fd ?? fd
      if (open !== undefined) {
        try {
          closeSync(open)
        } catch {
          // nothing more to do
        }
      }
      this.fd = undefined
      this.fail(err, 'open')
      return false
    }
  }

  private resume(size: number, mtimeMs: number): void {
    if (size === 0) {
      this.fileDay = utcDay(Date.now())
      if (!this.chainKnown) {
        const sibling = newestRotatedFile(this.file)
        const last = sibling === undefined ? undefined : lastChainedLineOf(sibling)
        if (last) {
          this.seq = last.seq
          this.prevHash = last.hash
        }
        this.chainKnown = true
      }
      this.needAnchor = true
      return
    }
    this.fileDay = utcDay(mtimeMs)
    const tail = readTail(this.fd!, size, 2)
    const lastText = tail.lines[tail.lines.length - 1]
    const last = lastText === undefined ? undefined : parseChainedLine(lastText)
    const before = tail.lines.length > 1 ? parseChainedLine(tail.lines[0]!) : undefined
    let problem: string | undefined
    if (!tail.endsWithNewline) problem = 'its last line is incomplete'
    else if (!last) problem = 'its last line is not a chained audit line'
    else {
      const prev = last.prevHash ?? before?.hash
      if (prev === undefined || !lineVerifies(this.cfg.key, prev, last)) {
        problem = 'its last line does not verify with the configured key (the key changed, or the file was edited)'
      } else if (this.chainKnown && (last.seq !== this.seq || last.hash !== this.prevHash)) {
        problem = 'it does not end where this writer left it'
      }
    }
    if (problem === undefined && last) {
      this.seq = last.seq
      this.prevHash = last.hash
      this.needAnchor = false
      this.chainKnown = true
      return
    }
    if (!this.chainKnown) {
      if (last) {
        this.seq = last.seq
        this.prevHash = last.hash
      }
      this.chainKnown = true
    }
    this.needAnchor = true
    this.setAside(problem ?? 'it cannot be continued', tail.endsWithNewline)
  }

  /** Move a file the chain cannot continue aside and start a fresh, anchored one. */
  private setAside(problem: string, endsWithNewline: boolean): void {
    const fd = this.fd!
    const target = nextRotatedName(this.file, this.fileDay)
    try {
      renameSync(this.file, target)
    } catch (err) {
      this.hooks.logger.error(`${PKG}: the audit file cannot be continued (${problem}) nor moved aside; appending an anchored line`, {
        file: this.file,
        error: errCode(err),
      })
      if (!endsWithNewline) writeSync(fd, '\n')
      return
    }
    closeSync(fd)
    this.fd = undefined
    this.hooks.logger.error(`${PKG}: the audit file cannot be continued (${problem}); moved aside, a new file continues the chain`, {
      file: this.file,
      movedTo: target,
    })
    this.fd = openSync(this.file, 'a+', 0o600)
    this.size = 0
    this.fileDay = utcDay(Date.now())
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
    if (this.healthy) return
    this.healthy = true
    this.dropReported = false
    this.hooks.logger.warn(`${PKG}: the audit file is writable again`, { file: this.file, dropped: this.stats.dropped })
  }

  private fail(err: unknown, op: string): GatehouseError {
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
    this.hooks.report(e, { file: this.file, op, pending: this.queue.length })
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w.reject(e)
    return e
  }
}
