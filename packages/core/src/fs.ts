import { closeSync, existsSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync, type Stats } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'

/**
 * Write a file atomically with the given mode: a temporary file in the same directory, fsync,
 * rename over the target, then fsync the directory. A crash leaves the old file or the new one,
 * never a partial one.
 */
export function writeFileAtomicSync(path: string, data: string | Buffer, mode = 0o600): void {
  const dir = dirname(path)
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
  const fd = openSync(tmp, 'wx', mode)
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
    let off = 0
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off)
    fsyncSync(fd)
  } catch (err) {
    closeSync(fd)
    try {
      unlinkSync(tmp)
    } catch {
      // already gone
    }
    throw err
  }
  closeSync(fd)
  renameSync(tmp, path)
  try {
    const dfd = openSync(dir, 'r')
    try {
      fsyncSync(dfd)
    } finally {
      closeSync(dfd)
    }
  } catch {
    // some filesystems refuse fsync on a directory; the rename itself is still atomic
  }
}

/** Why a secret-holding file is unsafe to read, or undefined when it is safe. */
export function insecureFileReason(path: string, stats: Stats = lstatSync(path)): string | undefined {
  if (stats.isSymbolicLink()) return 'is a symbolic link'
  if (!stats.isFile()) return 'is not a regular file'
  if ((stats.mode & 0o077) !== 0) return `has mode ${(stats.mode & 0o777).toString(8).padStart(4, '0')}; must be 0600`
  if (typeof process.getuid === 'function' && stats.uid !== process.getuid()) return 'is owned by another user'
  return undefined
}

/**
 * A secret kept in a file of its own: read it, or create it (random bytes, hex, mode 0600, its
 * directory 0700) on first use. An insecure file is refused with the reason. Returns the hex text.
 */
export function loadOrCreateSecretFile(file: string, bytes = 32): string {
  const dir = dirname(file)
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 })
  if (!existsSync(file)) writeFileAtomicSync(file, `${randomBytes(bytes).toString('hex')}\n`, 0o600)
  const reason = insecureFileReason(file)
  if (reason) throw new Error(`${file} ${reason}`)
  const value = readFileSync(file, 'utf8').trim()
  if (!new RegExp(`^[0-9a-f]{${bytes * 2}}$`).test(value)) throw new Error(`${file} is not ${bytes * 2} hex characters`)
  return value
}
