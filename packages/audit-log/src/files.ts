import { closeSync, existsSync, fstatSync, openSync, readSync, readdirSync } from 'node:fs'
import { basename, dirname, extname, join, resolve } from 'node:path'
import { parseChainedLine, type ParsedLine } from './chain'

/** `2026-02-19` for a time, in UTC. */
export const utcDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10)

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

export interface RotatedName {
  path: string
  day: string
  index: number
}

function rotatedPattern(active: string): RegExp {
  const ext = extname(active)
  const stem = basename(active, ext)
  return new RegExp(`^${escapeRe(stem)}\\.(\\d{4}-\\d{2}-\\d{2})\\.(\\d+)${escapeRe(ext)}$`)
}

/** The rotated files of an active file, oldest first (chain order). */
export function rotatedFiles(active: string): RotatedName[] {
  const dir = dirname(resolve(active))
  const re = rotatedPattern(active)
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return []
  }
  const out: RotatedName[] = []
  for (const name of names) {
    const m = re.exec(name)
    if (m) out.push({ path: join(dir, name), day: m[1]!, index: Number(m[2]) })
  }
  return out.sort((a, b) => (a.day === b.day ? a.index - b.index : a.day < b.day ? -1 : 1))
}

/** The name a full or finished active file is renamed to: `<stem>.<day>.<n><ext>`, n the next free. */
export function nextRotatedName(active: string, day: string): string {
  const ext = extname(active)
  const stem = basename(active, ext)
  const taken = rotatedFiles(active).filter((r) => r.day === day)
  let index = taken.reduce((max, r) => Math.max(max, r.index), 0) + 1
  let path = join(dirname(resolve(active)), `${stem}.${day}.${index}${ext}`)
  while (existsSync(path)) {
    index++
    path = join(dirname(resolve(active)), `${stem}.${day}.${index}${ext}`)
  }
  return path
}

/**
 * The files of one audit log in chain order: the rotated files, oldest first, then the active
 * file when it exists. Pass the result to `verifyAuditLog` to check the links between them.
 */
export function listAuditFiles(activeFile: string): string[] {
  const files = rotatedFiles(activeFile).map((r) => r.path)
  if (existsSync(activeFile)) files.push(resolve(activeFile))
  return files
}

/** The newest rotated file of an active file, if any. */
export function newestRotatedFile(activeFile: string): string | undefined {
  return rotatedFiles(activeFile).pop()?.path
}

export interface Tail {
  /** The complete lines at the end of the file, last ones, oldest first (at most `count`). */
  lines: string[]
  /** False when the file's last byte is not a newline: its last line is incomplete. */
  endsWithNewline: boolean
}

const CHUNK = 64 * 1024
const MAX_TAIL = 4 * 1024 * 1024

/** Read the last `count` complete lines of an open file without reading all of it. */
export function readTail(fd: number, size: number, count = 2): Tail {
  if (size === 0) return { lines: [], endsWithNewline: true }
  let pos = size
  let buf = Buffer.alloc(0)
  let newlines = 0
  while (pos > 0 && buf.length < MAX_TAIL) {
    const len = Math.min(CHUNK, pos)
    pos -= len
    const chunk = Buffer.alloc(len)
    let read = 0
    while (read < len) {
      const n = readSync(fd, chunk, read, len - read, pos + read)
      if (n === 0) break
      read += n
    }
    for (let i = 0; i < read; i++) if (chunk[i] === 0x0a) newlines++
    buf = Buffer.concat([chunk.subarray(0, read), buf])
    if (newlines > count) break
  }
  const endsWithNewline = buf[buf.length - 1] === 0x0a
  const parts = buf.toString('utf8').split('\n')
  if (endsWithNewline) parts.pop()
  else parts.pop() // the incomplete last line is not a complete line
  if (pos > 0) parts.shift() // may start mid-line
  return { lines: parts.slice(-count), endsWithNewline }
}

/** The last chained line of a file on disk, parsed; undefined when there is none. */
export function lastChainedLineOf(path: string): ParsedLine | undefined {
  let fd: number | undefined
  try {
    fd = openSync(path, 'r')
    const { size } = fstatSync(fd)
    const tail = readTail(fd, size, 1)
    const last = tail.lines[tail.lines.length - 1]
    return last === undefined ? undefined : parseChainedLine(last)
  } catch {
    return undefined
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

const MAX_FIRST_LINE = 2 * 1024 * 1024

/** The first line of a file on disk, parsed; undefined when it is not a complete chained line. */
export function firstChainedLineOf(path: string): ParsedLine | undefined {
  let fd: number | undefined
  try {
    fd = openSync(path, 'r')
    const buf = Buffer.alloc(Math.min(MAX_FIRST_LINE, fstatSync(fd).size))
    let read = 0
    let end = -1
    while (read < buf.length && end === -1) {
      const n = readSync(fd, buf, read, Math.min(CHUNK, buf.length - read), read)
      if (n === 0) break
      end = buf.indexOf(0x0a, read)
      read += n
      if (end >= read) end = -1
    }
    return end === -1 ? undefined : parseChainedLine(buf.toString('utf8', 0, end))
  } catch {
    return undefined
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}
