import { createHmac, timingSafeEqual } from 'node:crypto'

/**
 * The hash chain of the audit log.
 *
 * A line is written as `{…event fields…,"seq":N[,"prev_hash":P],"hash":H}` where
 * `H = hex(HMAC-SHA256(key, previousHash + chained))` and `chained` is the line without its
 * `,"hash":H` part, i.e. the exact bytes `{…event fields…,"seq":N[,"prev_hash":P]}`.
 * `previousHash` is the `hash` of the line before (hex), or `P` on the line that carries it.
 * `prev_hash` appears on the first line of every file: `""` where the chain begins (seq 1), the
 * last hash of the previous file otherwise. It anchors the file, so removing its first lines is
 * detected, and links the files of a rotated log.
 */

/** The chain state after one line. */
export interface ChainState {
  seq: number
  hash: string
}

/** `,"hash":"<64 hex>"}` at the very end of a line. */
const HASH_SUFFIX = /,"hash":"([0-9a-f]{64})"\}$/
const HASH_SUFFIX_LENGTH = ',"hash":"'.length + 64 + '"}'.length

export function chainHash(key: Buffer, previousHash: string, chained: string): string {
  return createHmac('sha256', key).update(previousHash, 'utf8').update(chained, 'utf8').digest('hex')
}

/**
 * Add the chain fields to a record body (JSON text ending in `}`). `anchor` puts `prev_hash` on
 * the line (the first line of a file).
 */
export function sealLine(
  key: Buffer,
  body: string,
  seq: number,
  previousHash: string,
  anchor: boolean,
): { line: string; hash: string } {
  const chained = `${body.slice(0, -1)},"seq":${seq}${anchor ? `,"prev_hash":"${previousHash}"` : ''}}`
  const hash = chainHash(key, previousHash, chained)
  return { line: `${chained.slice(0, -1)},"hash":"${hash}"}`, hash }
}

/** What a written line says about itself, or undefined when it is not a chained audit line. */
export interface ParsedLine {
  seq: number
  hash: string
  prevHash: string | undefined
  /** The line without its hash: what the HMAC covers. */
  chained: string
}

export function parseChainedLine(line: string): ParsedLine | undefined {
  const m = HASH_SUFFIX.exec(line)
  if (!m) return undefined
  let obj: unknown
  try {
    obj = JSON.parse(line)
  } catch {
    return undefined
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return undefined
  const o = obj as Record<string, unknown>
  if (typeof o.seq !== 'number' || !Number.isSafeInteger(o.seq) || o.seq < 1) return undefined
  if (o.hash !== m[1]) return undefined
  if (o.prev_hash !== undefined && (typeof o.prev_hash !== 'string' || !/^(?:[0-9a-f]{64})?$/.test(o.prev_hash))) {
    return undefined
  }
  return {
    seq: o.seq,
    hash: m[1]!,
    prevHash: o.prev_hash as string | undefined,
    chained: `${line.slice(0, line.length - HASH_SUFFIX_LENGTH)}}`,
  }
}

/** True when the line's hash is right for the given previous hash and key. */
export function lineVerifies(key: Buffer, previousHash: string, parsed: ParsedLine): boolean {
  const expected = Buffer.from(chainHash(key, previousHash, parsed.chained), 'hex')
  const actual = Buffer.from(parsed.hash, 'hex')
  return expected.length === actual.length && timingSafeEqual(expected, actual)
}
