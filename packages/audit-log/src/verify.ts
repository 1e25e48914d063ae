import { open } from 'node:fs/promises'
import { resolve } from 'node:path'
import { lineVerifies, parseChainedLine } from './chain'
import { resolveAuditKey } from './options'
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
}

interface RawLine {
  text: string
  number: number
  complete: boolean
}

const CHUNK = 64 * 1024

async function* readLines(path: string): AsyncGenerator<RawLine> {
  const fh = await open(path, 'r')
  try {
    const buf = Buffer.allocUnsafe(CHUNK)
    let rest: Buffer = Buffer.alloc(0)
    let number = 0
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null)
      if (bytesRead === 0) break
      const chunk: Buffer = rest.length === 0 ? buf.subarray(0, bytesRead) : Buffer.concat([rest, buf.subarray(0, bytesRead)])
      let start = 0
      let nl: number
      while ((nl = chunk.indexOf(0x0a, start)) !== -1) {
        yield { text: chunk.toString('utf8', start, nl), number: ++number, complete: true }
        start = nl + 1
      }
      rest = Buffer.from(chunk.subarray(start))
    }
    if (rest.length > 0) yield { text: rest.toString('utf8'), number: ++number, complete: false }
  } finally {
    await fh.close()
  }
}

const seqOf = (text: string): number | undefined => {
  const m = /,"seq":(\d{1,15})[,}]/.exec(text)
  return m ? Number(m[1]) : undefined
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
  let prevHash: string | undefined
  let expected: number | undefined
  let lastFile = list[0] ?? ''
  let lastLine = 0

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

  for (const file of list) {
    lastFile = file
    lastLine = 0
    let iterator: AsyncGenerator<RawLine>
    try {
      iterator = readLines(file)
    } catch (err) {
      throw unreadable(file, err)
    }
    let firstOfFile = true
    try {
      for await (const raw of iterator) {
        lastLine = raw.number
        const where = { file, line: raw.number }
        if (!raw.complete) {
          return fail({
            ...where,
            problem: 'incomplete',
            reason: `line ${raw.number} is cut short (no newline at its end): the file was truncated, or a write was interrupted`,
          })
        }
        const parsed = parseChainedLine(raw.text)
        if (!parsed) {
          return fail({
            ...where,
            problem: 'malformed',
            reason: `line ${raw.number} is not a chained audit line (not JSON, or its seq/hash fields are missing or altered)`,
          })
        }
        const at = { ...where, seq: parsed.seq }
        if (prevHash === undefined || expected === undefined) {
          // The very first line: it must be an anchor.
          if (parsed.prevHash === undefined) {
            return fail({
              ...at,
              problem: 'unanchored',
              reason: `line ${raw.number} carries no prev_hash anchor: lines were removed from the start of the file (or it is not a Gatehouse audit file)`,
            })
          }
          if (parsed.prevHash === '' && parsed.seq !== 1) {
            return fail({ ...at, problem: 'malformed', reason: `line ${raw.number} starts the chain but has seq ${parsed.seq}, not 1` })
          }
          prevHash = parsed.prevHash
          expected = parsed.seq
          result.firstSeq = parsed.seq
          result.genesis = parsed.prevHash === ''
        } else if (firstOfFile && parsed.prevHash === undefined) {
          return fail({
            ...at,
            problem: 'unanchored',
            reason: `line ${raw.number} carries no prev_hash anchor: lines were removed from the start of the file`,
          })
        } else if (parsed.prevHash !== undefined && (parsed.prevHash !== prevHash || parsed.seq !== expected)) {
          return fail({
            ...at,
            problem: 'broken_link',
            reason: firstOfFile
              ? `the file does not continue from the previous one (expected seq ${expected} after hash ${prevHash.slice(0, 12)}…, found seq ${parsed.seq}): a file is missing or was cut`
              : `line ${raw.number} restarts the chain from another point (expected seq ${expected}, found seq ${parsed.seq})`,
          })
        }
        firstOfFile = false
        if (parsed.seq > expected) {
          // Dropped, or moved further down? Look ahead in this file for the seq that belongs here.
          let foundAt: number | undefined
          for await (const later of iterator) {
            if (seqOf(later.text) === expected) {
              foundAt = later.number
              break
            }
          }
          return fail(
            foundAt !== undefined
              ? {
                  ...at,
                  problem: 'reordered',
                  reason: `line ${raw.number} has seq ${parsed.seq} where seq ${expected} belongs; seq ${expected} is at line ${foundAt}: lines were reordered`,
                }
              : {
                  ...at,
                  problem: 'missing',
                  reason: `line ${raw.number} has seq ${parsed.seq} where seq ${expected} belongs: ${parsed.seq - expected} line(s) before it were removed`,
                },
          )
        }
        if (parsed.seq < expected) {
          return fail({
            ...at,
            problem: 'reordered',
            reason: `line ${raw.number} has seq ${parsed.seq}, which belongs earlier (seq ${expected} expected here): lines were reordered or duplicated`,
          })
        }
        if (!lineVerifies(keyBytes, prevHash, parsed)) {
          return fail({
            ...at,
            problem: 'edited',
            reason: `line ${raw.number} (seq ${parsed.seq}) was changed: its hash does not match its content (or the key is wrong)`,
          })
        }
        const vouched = cps?.bySeq.get(parsed.seq)
        if (vouched !== undefined && vouched !== parsed.hash) {
          return fail({
            ...at,
            problem: 'replaced',
            reason: `line ${raw.number} (seq ${parsed.seq}) is not the line a shipped checkpoint vouches for: the log was rewritten from here`,
          })
        }
        prevHash = parsed.hash
        expected = parsed.seq + 1
        result.lines++
        result.lastSeq = parsed.seq
        result.lastHash = parsed.hash
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== undefined) throw unreadable(file, err)
      throw err
    }
  }

  if (cps && (result.lastSeq ?? 0) < cps.newest.seq) {
    const last = result.lastSeq ?? 0
    return fail({
      file: lastFile,
      line: lastLine + 1,
      problem: 'truncated',
      reason: `the log ends at seq ${last} but a checkpoint shipped at ${cps.newest.time} vouches for seq ${cps.newest.seq}: ${cps.newest.seq - last} line(s) were cut from the end`,
    })
  }
  const expect = options.expect
  if (expect) {
    const last = result.lastSeq ?? 0
    if (last < expect.seq) {
      return fail({
        file: lastFile,
        line: lastLine + 1,
        problem: 'truncated',
        reason: `the log ends at seq ${last} but seq ${expect.seq} was written: ${expect.seq - last} line(s) were cut from the end`,
      })
    }
    if (expect.hash !== undefined && last === expect.seq && result.lastHash !== expect.hash) {
      return fail({
        file: lastFile,
        line: lastLine,
        problem: 'edited',
        reason: `the last line (seq ${last}) is not the one that was written: its hash differs from the expected one`,
      })
    }
  }
  return result
}
