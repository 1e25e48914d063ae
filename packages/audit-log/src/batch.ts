import type { ActiveFile, ChainCursor } from './active-file'
import { sealLine } from './chain'
import { utcDay } from './files'

const MAX_BATCH_BYTES = 1024 * 1024

/**
 * A record whose body depends on where the chain stands when it is written (a checkpoint): called
 * with the seq and hash of the line before it; undefined leaves it out.
 */
export type BodyMaker = (seq: number, hash: string) => string | undefined

/** When the active file is rotated. */
export interface RotationPolicy {
  /** Bytes; 0: no size rotation. */
  maxSize: number
  /** Rotate on the first write of a new UTC day. */
  daily: boolean
  /** Rotate on the first write once the file's first line is this old; 0: never. */
  maxFileAgeMs: number
}

export interface Batch {
  buf: Buffer
  /** Lines in `buf`. */
  count: number
  /** Queue entries consumed (a BodyMaker may yield no line). */
  taken: number
  lines: string[] | undefined
  /** The active file must be rotated before the next entry. */
  rotate: boolean
  saved: { cursor: ChainCursor; day: string; startedAt: number | undefined }
}

/** True when a file holding lines must be rotated before anything more is written to it, by its day or age. */
function dueByTime(file: ActiveFile, policy: RotationPolicy, now: number): boolean {
  if (policy.daily && utcDay(now) !== file.day) return true
  return policy.maxFileAgeMs > 0 && file.startedAt !== undefined && now - file.startedAt >= policy.maxFileAgeMs
}

/**
 * Seal the queued entries that go into the next write (at most 1 MiB, stopping where the file must
 * rotate), moving `cursor` along. `rollback()` undoes it when the write fails.
 */
export function buildBatch(
  queue: ReadonlyArray<string | BodyMaker>,
  key: Buffer,
  cursor: ChainCursor,
  file: ActiveFile,
  policy: RotationPolicy,
  keepLines: boolean,
): Batch {
  const saved = { cursor: { ...cursor }, day: file.day, startedAt: file.startedAt }
  const parts: Buffer[] = []
  const lines = keepLines ? ([] as string[]) : undefined
  let bytes = 0
  let count = 0
  let taken = 0
  let rotate = false
  const now = Date.now()
  const canRotate = file.canRotate(now)
  const timeDue = canRotate && file.size > 0 && dueByTime(file, policy, now)
  for (const entry of queue) {
    const used = file.size + bytes
    if (timeDue && used > 0) {
      rotate = true
      break
    }
    const body = typeof entry === 'string' ? entry : entry(cursor.seq, cursor.prevHash)
    if (body === undefined) {
      taken++
      continue
    }
    const { line, hash } = sealLine(key, body, cursor.seq + 1, cursor.prevHash, cursor.needAnchor)
    const buf = Buffer.from(`${line}\n`, 'utf8')
    if (canRotate && used > 0 && policy.maxSize > 0 && used + buf.length > policy.maxSize) {
      rotate = true
      break
    }
    if (used === 0) {
      file.day = utcDay(now)
      file.startedAt = now
    }
    Object.assign(cursor, { seq: cursor.seq + 1, prevHash: hash, needAnchor: false })
    parts.push(buf)
    lines?.push(line)
    bytes += buf.length
    count++
    taken++
    if (bytes >= MAX_BATCH_BYTES) break
  }
  return { buf: Buffer.concat(parts, bytes), count, taken, lines, rotate, saved }
}

/** Put the chain and the file's day back where they were before `batch` was built. */
export function rollback(batch: Batch, cursor: ChainCursor, file: ActiveFile): void {
  Object.assign(cursor, batch.saved.cursor)
  file.day = batch.saved.day
  file.startedAt = batch.saved.startedAt
}

/**
 * Seal and append one line now, between batches, and sync it (a retention record, which files are
 * deleted on the strength of). Returns the line, or what failed; the chain moves only on success.
 */
export function appendLineNow(
  key: Buffer,
  cursor: ChainCursor,
  file: ActiveFile,
  body: string,
): { line: string } | { error: unknown; op: 'write' | 'sync' } {
  const { line, hash } = sealLine(key, body, cursor.seq + 1, cursor.prevHash, cursor.needAnchor)
  const now = Date.now()
  const wasEmpty = file.size === 0
  const failed = file.append(Buffer.from(`${line}\n`, 'utf8'))
  if (failed) {
    if (failed.damaged) cursor.needAnchor = true
    return { error: failed.error, op: 'write' }
  }
  if (wasEmpty) {
    file.day = utcDay(now)
    file.startedAt = now
  }
  Object.assign(cursor, { seq: cursor.seq + 1, prevHash: hash, needAnchor: false })
  try {
    file.syncNow()
  } catch (error) {
    return { error, op: 'sync' }
  }
  return { line }
}
