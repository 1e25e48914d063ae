import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import * as fsp from 'node:fs/promises'
import { join } from 'node:path'
import { GatehouseError } from '@gatehouse/core'
import { CredentialVaultErrorCodes } from './errors'

/*
 * File-system primitives for secret files: modes enforced on write (0600 files, 0700 directory),
 * verified on read (no symlink, no group/world access, our owner), and atomic replacement
 * (temporary file in the same directory, fsync, rename, directory fsync), so a crash at any point
 * leaves either the old file or the new one, never a partial one.
 */

const O_NOFOLLOW = fs.constants.O_NOFOLLOW ?? 0
// A FIFO planted in the directory must not block the open; the fstat check then refuses it.
const O_NONBLOCK = fs.constants.O_NONBLOCK ?? 0
const currentUid = (): number | undefined => (typeof process.getuid === 'function' ? process.getuid() : undefined)
const octal = (mode: number): string => `0${(mode & 0o777).toString(8).padStart(3, '0')}`

/** The name prefix/suffix of temporary files; the loader ignores them (they start with a dot). */
export const TEMP_SUFFIX = '.tmp'

export interface DirCheck {
  /** The directory mode was loosened and has been set back to 0700. */
  fixed?: string
  /** An insecure state accepted because allowInsecurePermissions is set. */
  insecure?: string
}

/**
 * Make sure `dir` exists (when `create`), is a real directory owned by us, and is 0700 (loosened
 * modes are fixed). A symlink or a directory owned by someone else is refused unless
 * `allowInsecure`; then it is reported in `insecure`.
 */
export function ensureSecureDir(dir: string, options: { create: boolean; allowInsecure: boolean }): DirCheck {
  let st: fs.Stats
  try {
    st = fs.lstatSync(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !options.create) {
      throw new GatehouseError(
        CredentialVaultErrorCodes.GH_VAULT_INSECURE_DIR,
        `the credential directory cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        500,
        { cause: err },
      )
    }
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    fs.chmodSync(dir, 0o700)
    return {}
  }
  const result: DirCheck = {}
  if (st.isSymbolicLink()) {
    if (!options.allowInsecure) {
      throw new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_INSECURE_DIR, 'the credential directory is a symlink')
    }
    result.insecure = 'the credential directory is a symlink'
    st = fs.statSync(dir)
  }
  if (!st.isDirectory()) {
    throw new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_INSECURE_DIR, 'the credential directory path is not a directory')
  }
  const uid = currentUid()
  if (uid !== undefined && st.uid !== uid) {
    const reason = `the credential directory is owned by uid ${st.uid}, not by this process (uid ${uid})`
    if (!options.allowInsecure) throw new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_INSECURE_DIR, reason)
    result.insecure = reason
    return result
  }
  if ((st.mode & 0o077) !== 0) {
    fs.chmodSync(dir, 0o700)
    result.fixed = `the credential directory had mode ${octal(st.mode)}; set to 0700`
  }
  return result
}

export interface SecureRead {
  data: Buffer
  stat: fs.Stats
  /** Why the file is insecure, when allowInsecurePermissions let it through. */
  insecure?: string
}

/** Why a file's metadata is insecure, or undefined when it is a 0600-or-stricter regular file we own. */
export function insecureReason(st: fs.Stats): string | undefined {
  if (st.isSymbolicLink()) return 'is a symlink'
  if (!st.isFile()) return 'is not a regular file'
  const uid = currentUid()
  if (uid !== undefined && st.uid !== uid) return `is owned by uid ${st.uid}, not by this process (uid ${uid})`
  if ((st.mode & 0o077) !== 0) return `has mode ${octal(st.mode)} (group or world access); expected 0600`
  return undefined
}

/**
 * Read a secret file and verify it: opened with O_NOFOLLOW and checked on the open descriptor
 * (no race between the check and the read). Throws GH_VAULT_INSECURE_FILE with the reason, or
 * GH_VAULT_INVALID_FILE when it is larger than `maxBytes`. Never writes anything.
 */
export function readSecureFileSync(path: string, options: { allowInsecure: boolean; maxBytes: number }): SecureRead {
  let fd: number
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | O_NONBLOCK | (options.allowInsecure ? 0 : O_NOFOLLOW))
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ELOOP' || code === 'EMLINK') {
      throw new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_INSECURE_FILE, 'the file is a symlink')
    }
    throw err
  }
  try {
    const stat = fs.fstatSync(fd)
    let insecure: string | undefined
    const lst = fs.lstatSync(path)
    const reason = lst.isSymbolicLink() ? 'is a symlink' : insecureReason(stat)
    if (reason !== undefined) {
      if (!options.allowInsecure || !stat.isFile()) {
        throw new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_INSECURE_FILE, `the file ${reason}`)
      }
      insecure = `the file ${reason}`
    }
    if (stat.size > options.maxBytes) {
      throw new GatehouseError(
        CredentialVaultErrorCodes.GH_VAULT_INVALID_FILE,
        `the file is ${stat.size} bytes, over the ${options.maxBytes}-byte limit`,
      )
    }
    const data = fs.readFileSync(fd)
    return insecure === undefined ? { data, stat } : { data, stat, insecure }
  } finally {
    fs.closeSync(fd)
  }
}

/** fsync a directory so a rename or unlink in it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  let handle: fsp.FileHandle | undefined
  try {
    handle = await fsp.open(dir, fs.constants.O_RDONLY)
    await handle.sync()
  } catch (err) {
    // Some platforms (Windows) cannot open or fsync a directory; the rename itself is still atomic.
    if (!['EISDIR', 'EPERM', 'EINVAL', 'EBADF'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err
  } finally {
    await handle?.close()
  }
}

/**
 * Replace `dir/name` atomically with `data`, mode 0600: write a temporary file in the same
 * directory (O_EXCL, O_NOFOLLOW), fsync it, rename it over the target, fsync the directory.
 * `beforeRename` runs just before the rename (a compare-and-swap hook); if it returns false the
 * temporary file is removed and false is returned.
 */
export async function writeFileAtomic(
  dir: string,
  name: string,
  data: Buffer | string,
  beforeRename?: () => boolean,
): Promise<boolean> {
  const tmp = join(dir, `.${name}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`)
  let handle: fsp.FileHandle | undefined
  let renamed = false
  try {
    handle = await fsp.open(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | O_NOFOLLOW, 0o600)
    await handle.writeFile(data)
    await handle.chmod(0o600)
    await handle.sync()
    await handle.close()
    handle = undefined
    if (beforeRename && !beforeRename()) return false
    await fsp.rename(tmp, join(dir, name))
    renamed = true
    await fsyncDir(dir)
    return true
  } finally {
    await handle?.close().catch(() => undefined)
    if (!renamed) await fsp.unlink(tmp).catch(() => undefined)
  }
}

/** Remove `dir/name` (not following symlinks) and fsync the directory. False when it did not exist. */
export async function removeFile(dir: string, name: string): Promise<boolean> {
  try {
    await fsp.unlink(join(dir, name))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
  await fsyncDir(dir)
  return true
}

/** Remove temporary files left by a crashed writer, when older than `olderThanMs`. */
export function removeStaleTempFiles(dir: string, names: readonly string[], olderThanMs: number, now: number): string[] {
  const removed: string[] = []
  for (const name of names) {
    if (!name.startsWith('.') || !name.endsWith(TEMP_SUFFIX)) continue
    try {
      const st = fs.lstatSync(join(dir, name))
      if (st.isFile() && now - st.mtimeMs > olderThanMs) {
        fs.unlinkSync(join(dir, name))
        removed.push(name)
      }
    } catch {
      // gone already, or not ours to remove
    }
  }
  return removed
}
