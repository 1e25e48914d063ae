import { resolve } from 'node:path'
import { resolveAuditKey } from './key'
import { ChainWalk, readLines, type RawLine } from './verify-chain'
import type { AuditCheckpoint } from './checkpoint'
import { checkpointExpectations, unreadable, type CheckpointSource } from './verify-checkpoints'

/** What is wrong at the first bad line. */
export type AuditVerifyProblem =
  /** the line's hash does not match its content: it was edited */
  | 'edited'
  /** lines are missing before this line (seq jumps) */
  | 'missing'
  /** lines are out of order (a seq appears before its turn, or again) */
  | 'reordered'
  /** not a chained JSON audit line */
  | 'malformed'
  /** the file ends inside a line: it was cut, or a write was interrupted */
  | 'incomplete'
  /** the first line carries no prev_hash anchor: lines were removed from the start */
  | 'unanchored'
  /** a file does not continue from the one before it */
  | 'broken_link'
  /** the chain ends before the expected last line (see `expect`) or the newest checkpoint */
  | 'truncated'
  /** a line differs from the one a shipped checkpoint vouches for: the log was rewritten */
  | 'replaced'
  /** the checkpoints cannot be trusted or are missing (bad signature, none for this log) */
  | 'checkpoint_invalid'
  /**
   * with `whole`: the log starts neither at seq 1 nor at a retention boundary it records: its
   * oldest file(s) were removed by something other than retention
   */
  | 'missing_start'

export interface AuditVerifyFailure {
  file: string
  /** 1-based line number in `file`. */
  line: number
  problem: AuditVerifyProblem
  /** One sentence for a person. */
  reason: string
  /** The seq the line carries, when it could be read. */
  seq?: number
}

export interface AuditVerifyResult {
  ok: boolean
  /** The files checked, in order. */
  files: string[]
  /** Lines that verified. */
  lines: number
  firstSeq?: number
  lastSeq?: number
  lastHash?: string
  /**
   * True when the chain starts at its beginning (seq 1, `prev_hash: ""`). False when the first
   * file continues an earlier one: its first line is then taken as the anchor, and checking the
   * link to the earlier file needs that file too.
   */
  genesis: boolean
  /**
   * With `whole`, when the chain does not begin at seq 1: the retention boundary it begins at
   * (the last seq the files deleted by retention held).
   */
  retainedFrom?: number
  /** With `checkpoints`: how many were read, and the furthest line they vouch for. */
  checkpoints?: { count: number; newestSeq: number; newestTime: string }
  failure?: AuditVerifyFailure
}

export interface VerifyAuditLogOptions {
  /**
   * The last line known to have been written (from `auditLogger.head()`, kept elsewhere). Lines
   * cut from the end of a log are otherwise undetectable: nothing after them can tell.
   */
  expect?: { seq: number; hash?: string }
  /**
   * The checkpoints shipped off the box: a file (a collector's export: one record a line, behind
   * a syslog header or not; other lines are skipped) or checkpoint records. The log must hold every
   * line they vouch for, with the same hash, and reach the newest: a cut tail is `truncated`, a
   * rewritten one `replaced`.
   */
  checkpoints?: string | readonly AuditCheckpoint[]
  /** Ed25519 public key (PEM or KeyObject) of checkpoints signed with `checkpoints.signingKey`. */
  checkpointPublicKey?: CheckpointSource['publicKey']
  /** Only checkpoints carrying this log id count. */
  logId?: string
  /**
   * The files are the whole log (`listAuditFiles()`), not a part of it: the chain must begin at
   * seq 1, or where a retention record in the log says the files deleted by `retention` ended.
   * Otherwise a log whose oldest files were removed fails with `missing_start`. Without it, the
   * first file's anchor is taken as given (`genesis: false`), to check one rotated file alone.
   * @default false
   */
  whole?: boolean
}

/**
 * Check the hash chain of an audit log: one file, or several in chain order (`listAuditFiles()`).
 * Reports the first line that was edited, dropped, reordered or cut, with its file and line
 * number. Throws GH_AUDIT_UNREADABLE when a file cannot be read and GH_AUDIT_INVALID_KEY for a bad
 * key; a log that fails the check resolves with `ok: false`.
 */
export async function verifyAuditLog(
  files: string | readonly string[],
  key: string | Buffer,
  options: VerifyAuditLogOptions = {},
): Promise<AuditVerifyResult> {
  const keyBytes = resolveAuditKey(key)
  const list = (typeof files === 'string' ? [files] : [...files]).map((f) => resolve(f))
  const result: AuditVerifyResult = { ok: true, files: list, lines: 0, genesis: false }
  const fail = (failure: AuditVerifyFailure): AuditVerifyResult => {
    result.ok = false
    result.failure = failure
    return result
  }

  const cps =
    options.checkpoints === undefined
      ? undefined
      : await checkpointExpectations(
          {
            checkpoints: options.checkpoints,
            ...(options.checkpointPublicKey === undefined ? {} : { publicKey: options.checkpointPublicKey }),
            ...(options.logId === undefined ? {} : { logId: options.logId }),
          },
          keyBytes,
        )
  if (cps && 'reason' in cps) return fail({ ...cps, problem: 'checkpoint_invalid' })
  if (cps) result.checkpoints = { count: cps.count, newestSeq: cps.newest.seq, newestTime: cps.newest.time }

  const walk = new ChainWalk(keyBytes, result, cps?.bySeq)
  const end = { file: list[list.length - 1] ?? '', line: 0 }
  for (const file of list) {
    const failure = await walkFile(walk, file, end)
    if (failure) return fail(failure)
  }
  const failure = (options.whole ? startFailure(walk, result, list[0] ?? '') : undefined) ?? endFailure(result, end, cps?.newest, options.expect)
  return failure ? fail(failure) : result
}

/** Walk one file's lines; `end` is left at its last line. */
async function walkFile(walk: ChainWalk, file: string, end: { file: string; line: number }): Promise<AuditVerifyFailure | undefined> {
  end.file = file
  end.line = 0
  let iterator: AsyncGenerator<RawLine>
  try {
    iterator = readLines(file)
  } catch (err) {
    throw unreadable(file, err)
  }
  let firstOfFile = true
  try {
    for await (const raw of iterator) {
      end.line = raw.number
      const failure = await walk.check(raw, firstOfFile, iterator)
      if (failure) return { file, ...failure }
      firstOfFile = false
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== undefined) throw unreadable(file, err)
    throw err
  }
  return undefined
}

/** With `whole`: the chain begins at seq 1 or at a retention boundary the log records. */
function startFailure(walk: ChainWalk, result: AuditVerifyResult, first: string): AuditVerifyFailure | undefined {
  const start = walk.start
  if (start === undefined || result.genesis) return undefined
  if (walk.boundaries.some((b) => b.seq === start.seq && b.hash === start.hash)) {
    result.retainedFrom = start.seq
    return undefined
  }
  return {
    file: first,
    line: 1,
    seq: start.seq + 1,
    problem: 'missing_start',
    reason: `the log begins at seq ${start.seq + 1}, but no retention record in it says the lines up to seq ${start.seq} were deleted by retention: its oldest file(s) were removed`,
  }
}

/** The log reaches the newest shipped checkpoint and the `expect`ed last line. */
function endFailure(
  result: AuditVerifyResult,
  end: { file: string; line: number },
  newest: { seq: number; time: string } | undefined,
  expect: VerifyAuditLogOptions['expect'],
): AuditVerifyFailure | undefined {
  const last = result.lastSeq ?? 0
  if (newest && last < newest.seq) {
    return {
      file: end.file,
      line: end.line + 1,
      problem: 'truncated',
      reason: `the log ends at seq ${last} but a checkpoint shipped at ${newest.time} vouches for seq ${newest.seq}: ${newest.seq - last} line(s) were cut from the end`,
    }
  }
  if (!expect) return undefined
  if (last < expect.seq) {
    return {
      file: end.file,
      line: end.line + 1,
      problem: 'truncated',
      reason: `the log ends at seq ${last} but seq ${expect.seq} was written: ${expect.seq - last} line(s) were cut from the end`,
    }
  }
  if (expect.hash !== undefined && last === expect.seq && result.lastHash !== expect.hash) {
    return {
      file: end.file,
      line: end.line,
      problem: 'edited',
      reason: `the last line (seq ${last}) is not the one that was written: its hash differs from the expected one`,
    }
  }
  return undefined
}
