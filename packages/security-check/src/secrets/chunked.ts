import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs'
import { StringDecoder } from 'node:string_decoder'
import { maxRuleReach } from './bounds'
import type { SecretScanner, TextHit } from './engine'
import { SECRET_RULES } from './rules'

/**
 * Reading a file in chunks, so a file of any size is scanned in bounded memory.
 *
 * The file is read CHUNK_BYTES at a time and decoded (a UTF-8 character cut by a read waits for
 * the next one). Each window of text is the tail of the previous window plus the new chunk, and
 * each window *owns* the credentials that start in one range of it: the ranges of successive
 * windows tile the file, so a credential is reported once, by the window its first character
 * belongs to. A window's range ends RULE_REACH characters before the window does, RULE_REACH being
 * the longest text any rule can match plus its lookahead, worked out from the rule table (see
 * bounds.ts): so every credential a window owns lies whole inside it. The next window starts at
 * least RULE_REACH + LOOKBEHIND before its range, so a keyword rule whose reported value starts in
 * the range (`secret_access_key = …`) has its keyword in the window too, and the matcher sees the
 * characters it checks before a candidate.
 */

/**
 * Bytes read at a time; files up to this size are read in one go. Small enough that a window
 * (a chunk, LINE_CONTEXT and RULE_REACH: under 128 K characters) stays below V8's large-object
 * size: with 1 MiB chunks, windows lived in large-object space and a 50 MB file scanned at about
 * half the speed, with twice the peak memory.
 */
export const CHUNK_BYTES = 96 * 1024
/** The most characters any rule's match and lookahead span: the overlap of successive windows. */
export const RULE_REACH = maxRuleReach(SECRET_RULES)
/**
 * Characters before a candidate that core's matcher reads: 2 for the token boundary (`\n` escapes)
 * and 7 for a package integrity prefix (`sha512-`); 16 leaves room.
 */
export const LOOKBEHIND = 16
/**
 * A window starts early enough to hold the start of a credential's line and the line before it
 * (for allow comments), up to this many characters back. In a longer line (minified code) an allow
 * marker counts when it is within this many characters before the window, not the line's first
 * ALLOW_SEARCH_LIMIT characters as in a file read whole.
 */
export const LINE_CONTEXT = 24 * 1024

const BINARY_PROBE = 8000

// Non-blocking open: a file swapped for a FIFO after the walk must not hang the scan.
const OPEN_FLAGS =
  process.platform === 'win32' ? constants.O_RDONLY : constants.O_RDONLY | constants.O_NONBLOCK

export type FileScan =
  { kind: 'text'; hits: TextHit[]; bytes: number } | { kind: 'binary' | 'tooLarge' | 'unreadable' }

export interface FileScanOptions {
  /** A file larger than this is not read (`tooLarge`). @default Infinity */
  readonly maxFileSize?: number
  /** A buffer to read into, reused between files; its length is the chunk size. */
  readonly buffer?: Buffer
}

function countNewlines(text: string, end: number): number {
  let n = 0
  for (let i = text.indexOf('\n'); i !== -1 && i < end; i = text.indexOf('\n', i + 1)) n++
  return n
}

/** Read until `buffer` is full or the file ends; undefined when the read fails. */
function fill(fd: number, buffer: Buffer): { filled: number; final: boolean } | undefined {
  let filled = 0
  try {
    while (filled < buffer.length) {
      const n = readSync(fd, buffer, filled, buffer.length - filled, null)
      if (n === 0) return { filled, final: true }
      filled += n
    }
  } catch {
    return undefined
  }
  return { filled, final: false }
}

/** Where the next window starts, given that this one owns up to `to`. */
function nextWindowStart(text: string, to: number): number {
  const lineStart = text.lastIndexOf('\n', to - 1) + 1
  const prevLineStart = lineStart >= 2 ? text.lastIndexOf('\n', lineStart - 2) + 1 : 0
  const wanted = Math.max(prevLineStart, to - LINE_CONTEXT)
  return Math.max(0, Math.min(wanted, to - RULE_REACH - LOOKBEHIND))
}

/**
 * Scan one file for credentials, chunk by chunk. Synchronous on purpose: the scan is CPU-bound,
 * and for many small files a blocking read is several times cheaper than a round trip through
 * the libuv thread pool. Memory stays within about two chunks and LINE_CONTEXT, whatever the
 * file's size.
 */
export function scanFile(abs: string, scanner: SecretScanner, options: FileScanOptions = {}): FileScan {
  const maxFileSize = options.maxFileSize ?? Infinity
  const buffer = options.buffer ?? Buffer.allocUnsafe(CHUNK_BYTES)
  let fd: number
  try {
    fd = openSync(abs, OPEN_FLAGS)
  } catch {
    return { kind: 'unreadable' }
  }
  // Only reading counts as unreadable; an error in the scan itself is thrown, never taken for a
  // file that could not be read.
  try {
    let st
    try {
      st = fstatSync(fd)
    } catch {
      return { kind: 'unreadable' }
    }
    if (!st.isFile()) return { kind: 'unreadable' }
    if (st.size > maxFileSize) return { kind: 'tooLarge' }
    const decoder = new StringDecoder('utf8')
    const hits: TextHit[] = []
    let bytes = 0
    let carry = ''
    let firstLine = 1
    let firstColumn = 1
    let from = 0
    for (;;) {
      // Fill the buffer, so a file that fits in one chunk is read (and scanned) in one go.
      const read = fill(fd, buffer)
      if (read === undefined) return { kind: 'unreadable' }
      const { filled, final } = read
      if (bytes === 0 && buffer.subarray(0, Math.min(filled, BINARY_PROBE)).includes(0)) return { kind: 'binary' }
      bytes += filled
      // The file grew after fstat.
      if (bytes > maxFileSize) return { kind: 'tooLarge' }
      const text =
        bytes === filled && final
          ? buffer.toString('utf8', 0, filled)
          : carry + decoder.write(buffer.subarray(0, filled)) + (final ? decoder.end() : '')
      const to = final ? text.length : text.length - RULE_REACH
      if (!final && to <= from) {
        carry = text
        continue
      }
      for (const h of scanner.scanText(text, { firstLine, firstColumn, from, to })) hits.push(h)
      if (final) return { kind: 'text', hits, bytes }
      const start = nextWindowStart(text, to)
      if (start > 0) {
        const lastNl = text.lastIndexOf('\n', start - 1)
        firstColumn = lastNl === -1 ? firstColumn + start : start - lastNl
        firstLine += countNewlines(text, start)
      }
      carry = text.slice(start)
      from = to - start
    }
  } finally {
    closeSync(fd)
  }
}
