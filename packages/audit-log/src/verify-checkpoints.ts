import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { resolve } from 'node:path'
import type { KeyObject } from 'node:crypto'
import { GatehouseError } from '@gatehouse/core'
import { lineVerifies } from './chain'
import {
  checkpointSignatureValid,
  checkpointInLine,
  resolvePublicKey,
  type AuditCheckpoint,
  type FoundCheckpoint,
} from './checkpoint'
import { AuditLogErrorCodes } from './errors'

/** What the shipped checkpoints say the local log must hold. */
export interface CheckpointExpectations {
  /** seq → the hash that line must have. */
  bySeq: Map<number, string>
  /** The furthest line a checkpoint vouches for. */
  newest: { seq: number; hash: string; time: string }
  /** Checkpoints read (for this log). */
  count: number
}

export interface CheckpointProblem {
  file: string
  line: number
  reason: string
}

export interface CheckpointSource {
  /** A collector's export (one record a line), or checkpoint records already parsed. */
  checkpoints: string | readonly AuditCheckpoint[]
  publicKey?: string | Buffer | KeyObject
  logId?: string
}

async function read(
  source: string | readonly AuditCheckpoint[],
): Promise<{ file: string; found: FoundCheckpoint[] }> {
  if (typeof source !== 'string')
    return {
      file: '(checkpoints)',
      found: source.map((checkpoint, i) => ({ checkpoint, line: undefined, at: i + 1 })),
    }
  const file = resolve(source)
  // Read line by line: a collector's export holds every event too, and may be large.
  const found: FoundCheckpoint[] = []
  try {
    const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity })
    let at = 0
    for await (const text of lines) {
      const cp = checkpointInLine(text, ++at)
      if (cp) found.push(cp)
    }
    return { file, found }
  } catch (err) {
    throw unreadable(file, err)
  }
}

/** GH_AUDIT_UNREADABLE for a file that cannot be read (the log's or the checkpoints'). */
export function unreadable(file: string, err: unknown): GatehouseError {
  const code = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err))
  return new GatehouseError(
    AuditLogErrorCodes.GH_AUDIT_UNREADABLE,
    `@gatehouse/audit-log: cannot read ${file} (${code})`,
    500,
    {
      cause: err,
    },
  )
}

/**
 * Read and authenticate the shipped checkpoints. Every checkpoint of this log must verify (a forged
 * or altered one is itself evidence); at least one must be there.
 */
export async function checkpointExpectations(
  source: CheckpointSource,
  auditKey: Buffer,
): Promise<CheckpointExpectations | CheckpointProblem> {
  const publicKey =
    source.publicKey === undefined ? undefined : resolvePublicKey(source.publicKey, 'checkpointPublicKey')
  const { file, found } = await read(source.checkpoints)
  const bySeq = new Map<number, string>()
  let newest: CheckpointExpectations['newest'] | undefined
  let count = 0
  const expect = (seq: number, hash: string, at: number): CheckpointProblem | undefined => {
    const had = bySeq.get(seq)
    if (had !== undefined && had !== hash)
      return {
        file,
        line: at,
        reason: `checkpoints disagree about seq ${seq}: two different logs share this id, or checkpoints were forged`,
      }
    bySeq.set(seq, hash)
    return undefined
  }
  for (const { checkpoint: cp, line, at } of found) {
    if (source.logId !== undefined && cp.log !== source.logId) continue
    count++
    if (!checkpointSignatureValid(cp, auditKey, publicKey)) {
      const why = cp.alg === 'ed25519' && !publicKey ? ' (an Ed25519 checkpoint: pass the public key)' : ''
      return {
        file,
        line: at,
        reason: `the checkpoint for seq ${cp.seq} does not verify${why}: wrong key, or it was forged or altered`,
      }
    }
    let problem = expect(cp.seq, cp.hash, at)
    let top = { seq: cp.seq, hash: cp.hash, time: cp.time }
    if (line) {
      // The checkpoint's own line: its hash chains from the checkpointed hash under the audit key.
      if (line.seq !== cp.seq + 1 || !lineVerifies(auditKey, cp.hash, line)) {
        return {
          file,
          line: at,
          reason: `the line carrying the checkpoint for seq ${cp.seq} does not verify: wrong key, or it was altered`,
        }
      }
      problem ??= expect(line.seq, line.hash, at)
      top = { seq: line.seq, hash: line.hash, time: cp.time }
    }
    if (problem) return problem
    if (!newest || top.seq > newest.seq) newest = top
  }
  if (!newest) {
    return {
      file,
      line: 0,
      reason: `no checkpoint${source.logId === undefined ? '' : ` of log ${JSON.stringify(source.logId)}`} found: nothing proves how far the log went`,
    }
  }
  return { bySeq, newest, count }
}
