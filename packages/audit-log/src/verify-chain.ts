import { open } from 'node:fs/promises'
import { lineVerifies, parseChainedLine } from './chain'
import { retentionBoundaryIn, type RetentionBoundary } from './retention'
import type { AuditVerifyFailure, AuditVerifyResult } from './verify'

export interface RawLine {
  text: string
  number: number
  complete: boolean
}

const CHUNK = 64 * 1024

export async function* readLines(path: string): AsyncGenerator<RawLine> {
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

type Failure = Omit<AuditVerifyFailure, 'file'>

/**
 * Walks the chain line by line across the files of one log: each line must be chained JSON, carry
 * the next seq, link to the hash before it (or, first in a file, anchor to it), and verify under
 * the key. Collects what `verifyAuditLog` reports at the end: the counts, the head, and the
 * retention boundaries the log records.
 */
export class ChainWalk {
  private prevHash: string | undefined
  private expected: number | undefined
  /** The boundaries stated by the chained retention records met on the way. */
  readonly boundaries: RetentionBoundary[] = []
  /** Where the first line continues from (seq before it, its prev_hash). */
  start: RetentionBoundary | undefined

  constructor(
    private readonly key: Buffer,
    private readonly result: AuditVerifyResult,
    private readonly vouched: ReadonlyMap<number, string> | undefined,
  ) {}

  /** Check one line; `rest` is the rest of its file (read ahead to tell a reorder from a gap). */
  async check(raw: RawLine, firstOfFile: boolean, rest: AsyncIterable<RawLine>): Promise<Failure | undefined> {
    const where = { line: raw.number }
    if (!raw.complete) {
      return {
        ...where,
        problem: 'incomplete',
        reason: `line ${raw.number} is cut short (no newline at its end): the file was truncated, or a write was interrupted`,
      }
    }
    const parsed = parseChainedLine(raw.text)
    if (!parsed) {
      return {
        ...where,
        problem: 'malformed',
        reason: `line ${raw.number} is not a chained audit line (not JSON, or its seq/hash fields are missing or altered)`,
      }
    }
    const at = { ...where, seq: parsed.seq }
    const linkProblem = this.link(raw.number, parsed.seq, parsed.prevHash, firstOfFile)
    if (linkProblem) return { ...at, ...linkProblem }
    const expected = this.expected!
    if (parsed.seq > expected) return { ...at, ...(await this.gap(raw.number, parsed.seq, expected, rest)) }
    if (parsed.seq < expected) {
      return {
        ...at,
        problem: 'reordered',
        reason: `line ${raw.number} has seq ${parsed.seq}, which belongs earlier (seq ${expected} expected here): lines were reordered or duplicated`,
      }
    }
    if (!lineVerifies(this.key, this.prevHash!, parsed)) {
      return {
        ...at,
        problem: 'edited',
        reason: `line ${raw.number} (seq ${parsed.seq}) was changed: its hash does not match its content (or the key is wrong)`,
      }
    }
    const vouched = this.vouched?.get(parsed.seq)
    if (vouched !== undefined && vouched !== parsed.hash) {
      return {
        ...at,
        problem: 'replaced',
        reason: `line ${raw.number} (seq ${parsed.seq}) is not the line a shipped checkpoint vouches for: the log was rewritten from here`,
      }
    }
    const boundary = retentionBoundaryIn(raw.text)
    if (boundary) this.boundaries.push(boundary)
    this.prevHash = parsed.hash
    this.expected = parsed.seq + 1
    this.result.lines++
    this.result.lastSeq = parsed.seq
    this.result.lastHash = parsed.hash
    return undefined
  }

  /** The line's place in the chain: the first line must anchor; a file's first line must continue the one before. */
  private link(number: number, seq: number, prevHash: string | undefined, firstOfFile: boolean): Omit<Failure, 'line'> | undefined {
    if (this.prevHash === undefined || this.expected === undefined) {
      if (prevHash === undefined) {
        return {
          problem: 'unanchored',
          reason: `line ${number} carries no prev_hash anchor: lines were removed from the start of the file (or it is not a Gatehouse audit file)`,
        }
      }
      if (prevHash === '' && seq !== 1) return { problem: 'malformed', reason: `line ${number} starts the chain but has seq ${seq}, not 1` }
      this.prevHash = prevHash
      this.expected = seq
      this.start = { seq: seq - 1, hash: prevHash }
      this.result.firstSeq = seq
      this.result.genesis = prevHash === ''
      return undefined
    }
    if (firstOfFile && prevHash === undefined) {
      return { problem: 'unanchored', reason: `line ${number} carries no prev_hash anchor: lines were removed from the start of the file` }
    }
    if (prevHash !== undefined && (prevHash !== this.prevHash || seq !== this.expected)) {
      return {
        problem: 'broken_link',
        reason: firstOfFile
          ? `the file does not continue from the previous one (expected seq ${this.expected} after hash ${this.prevHash.slice(0, 12)}…, found seq ${seq}): a file is missing or was cut`
          : `line ${number} restarts the chain from another point (expected seq ${this.expected}, found seq ${seq})`,
      }
    }
    return undefined
  }

  /** The seq jumps ahead: dropped, or moved further down? Look ahead in this file for the seq that belongs here. */
  private async gap(number: number, seq: number, expected: number, rest: AsyncIterable<RawLine>): Promise<Omit<Failure, 'line'>> {
    for await (const later of rest) {
      if (seqOf(later.text) === expected) {
        return {
          problem: 'reordered',
          reason: `line ${number} has seq ${seq} where seq ${expected} belongs; seq ${expected} is at line ${later.number}: lines were reordered`,
        }
      }
    }
    return {
      problem: 'missing',
      reason: `line ${number} has seq ${seq} where seq ${expected} belongs: ${seq - expected} line(s) before it were removed`,
    }
  }
}
