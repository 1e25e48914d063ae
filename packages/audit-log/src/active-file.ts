import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  renameSync,
  writeSync,
} from 'node:fs'
import { dirname, resolve } from 'node:path'
import type { Logger } from '@gatehouse/core'
import { lineVerifies, parseChainedLine } from './chain'
import { lastChainedLineOf, newestRotatedFile, nextRotatedName, readTail, utcDay } from './files'

const PKG = '@gatehouse/audit-log'
const ROTATION_BACKOFF_MS = 60_000

/** Where the chain stands: the seq and hash of the last line written, and whether the next line anchors a file. */
export interface ChainCursor {
  seq: number
  prevHash: string
  needAnchor: boolean
  /** False until the writer has read where an earlier writer left the chain. */
  known: boolean
}

export const errCode = (err: unknown): string =>
  (err as NodeJS.ErrnoException | undefined)?.code ?? (err instanceof Error ? err.message : String(err))

/**
 * The active audit file on disk: opening it and finding where its chain stands, appending,
 * syncing, renaming it to its rotated name, and moving aside a file the chain cannot continue.
 */
export class ActiveFile {
  readonly path: string
  fd: number | undefined
  /** False for a device or pipe: never rotated, truncated or synced. */
  regular = true
  size = 0
  /** The UTC day the file's lines were written (for its rotated name and daily rotation). */
  day = utcDay(Date.now())
  /** When the file's first line was written (after a restart: when the file was created); undefined while empty. */
  startedAt: number | undefined
  private rotationBlockedUntil = 0

  constructor(
    file: string,
    private readonly key: Buffer,
    private readonly logger: Logger,
  ) {
    this.path = resolve(file)
  }

  /** True when a rotation may be tried now (not a device, no recent failed rename). */
  canRotate(now: number): boolean {
    return this.regular && now >= this.rotationBlockedUntil
  }

  /** Open (or reopen) the file and move `cursor` to where its chain stands. Throws when it cannot be opened. */
  open(cursor: ChainCursor): void {
    let fd: number | undefined
    try {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 })
      fd = openSync(this.path, 'a+', 0o600)
      const st = fstatSync(fd)
      this.fd = fd
      this.regular = st.isFile()
      this.size = this.regular ? st.size : 0
      this.startedAt = this.size > 0 ? st.birthtimeMs || st.mtimeMs : undefined
      if (this.regular) this.resume(cursor, st.size, st.mtimeMs)
      else {
        // A device or pipe: nothing to resume from; each opening starts an anchored stretch.
        cursor.known = true
        cursor.needAnchor = true
      }
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
      throw err
    }
  }

  /** Append all of `buf`. On a failure, cut a partial append back off; `damaged` when that failed too. */
  append(buf: Buffer): { error: unknown; damaged: boolean } | undefined {
    const fd = this.fd!
    let off = 0
    try {
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off)
    } catch (error) {
      let damaged = false
      if (off > 0 && this.regular) {
        // A partial batch would leave half a line: cut the file back to where the batch began.
        try {
          ftruncateSync(fd, fstatSync(fd).size - off)
        } catch {
          damaged = true
        }
      }
      return { error, damaged }
    }
    this.size += buf.length
    return undefined
  }

  /** fdatasync, in the thread pool. */
  sync(): Promise<void> {
    const fd = this.fd
    if (fd === undefined || !this.regular) return Promise.resolve()
    return new Promise<void>((resolvePromise, reject) => {
      fdatasync(fd, (err) => (err ? reject(err) : resolvePromise()))
    })
  }

  /** fdatasync now (before files are deleted on the strength of what was just written). */
  syncNow(): void {
    if (this.fd !== undefined && this.regular) fdatasyncSync(this.fd)
  }

  close(): void {
    if (this.fd === undefined) return
    try {
      closeSync(this.fd)
    } catch {
      // closing a descriptor only fails if it is already gone
    }
    this.fd = undefined
  }

  /** Sync and rename the file to its rotated name. Returns that name, or undefined when it failed (logged). */
  rotate(): string | undefined {
    const fd = this.fd
    if (fd === undefined) return undefined
    const target = nextRotatedName(this.path, this.day)
    try {
      fsyncSync(fd)
      renameSync(this.path, target)
    } catch (err) {
      this.rotationBlockedUntil = Date.now() + ROTATION_BACKOFF_MS
      this.logger.error(`${PKG}: cannot rotate the audit file; writing on to it`, { file: this.path, error: errCode(err) })
      return undefined
    }
    this.close()
    this.size = 0
    this.startedAt = undefined
    this.day = utcDay(Date.now())
    return target
  }

  private resume(cursor: ChainCursor, size: number, mtimeMs: number): void {
    if (size === 0) {
      this.day = utcDay(Date.now())
      if (!cursor.known) {
        const sibling = newestRotatedFile(this.path)
        const last = sibling === undefined ? undefined : lastChainedLineOf(sibling)
        if (last) {
          cursor.seq = last.seq
          cursor.prevHash = last.hash
        }
        cursor.known = true
      }
      cursor.needAnchor = true
      return
    }
    this.day = utcDay(mtimeMs)
    const tail = readTail(this.fd!, size, 2)
    const lastText = tail.lines[tail.lines.length - 1]
    const last = lastText === undefined ? undefined : parseChainedLine(lastText)
    const before = tail.lines.length > 1 ? parseChainedLine(tail.lines[0]!) : undefined
    let problem: string | undefined
    if (!tail.endsWithNewline) problem = 'its last line is incomplete'
    else if (!last) problem = 'its last line is not a chained audit line'
    else {
      const prev = last.prevHash ?? before?.hash
      if (prev === undefined || !lineVerifies(this.key, prev, last)) {
        problem = 'its last line does not verify with the configured key (the key changed, or the file was edited)'
      } else if (cursor.known && (last.seq !== cursor.seq || last.hash !== cursor.prevHash)) {
        problem = 'it does not end where this writer left it'
      }
    }
    if (problem === undefined && last) {
      Object.assign(cursor, { seq: last.seq, prevHash: last.hash, needAnchor: false, known: true })
      return
    }
    if (!cursor.known) {
      if (last) Object.assign(cursor, { seq: last.seq, prevHash: last.hash })
      cursor.known = true
    }
    cursor.needAnchor = true
    this.setAside(problem ?? 'it cannot be continued', tail.endsWithNewline)
  }

  /** Move a file the chain cannot continue aside and start a fresh, anchored one. */
  private setAside(problem: string, endsWithNewline: boolean): void {
    const fd = this.fd!
    const target = nextRotatedName(this.path, this.day)
    try {
      renameSync(this.path, target)
    } catch (err) {
      this.logger.error(`${PKG}: the audit file cannot be continued (${problem}) nor moved aside; appending an anchored line`, {
        file: this.path,
        error: errCode(err),
      })
      if (!endsWithNewline) writeSync(fd, '\n')
      return
    }
    closeSync(fd)
    this.fd = undefined
    this.logger.error(`${PKG}: the audit file cannot be continued (${problem}); moved aside, a new file continues the chain`, {
      file: this.path,
      movedTo: target,
    })
    this.fd = openSync(this.path, 'a+', 0o600)
    this.size = 0
    this.startedAt = undefined
    this.day = utcDay(Date.now())
  }
}
