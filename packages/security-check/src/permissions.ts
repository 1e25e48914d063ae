import { chmod, open, readdir, type FileHandle } from 'node:fs/promises'
import { constants, existsSync, type Stats } from 'node:fs'
import { join, resolve } from 'node:path'
import { GatehouseError } from '@gatehouse/core'
import { PKG, SecurityCheckErrorCodes } from './errors'
import { resolvePermissionsConfig, type CheckPermissionsOptions } from './options'
import { displayPath } from './secrets/files'

export type PermissionFindingKind =
  /** A regular file whose mode is not `fileMode`. */
  | 'file-mode'
  /** A directory whose mode is not `dirMode`. */
  | 'directory-mode'
  /** A symbolic link: credential files must be regular files (a link can point anywhere). */
  | 'symlink'
  /** Owned by another uid than `owner`. */
  | 'owner'
  /** A FIFO, socket or device. */
  | 'special-file'
  /** Could not be read (the directory could not be listed). */
  | 'unreadable'

export interface PermissionFinding {
  /** Path relative to `cwd`, forward slashes. */
  readonly path: string
  readonly kind: PermissionFindingKind
  /** What it should be (`0600`, `uid 1000`), when that applies. */
  readonly expected?: string
  /** What it is (`0644`, `uid 0`), when that applies. */
  readonly actual?: string
  /** True when `fix` repaired it. */
  readonly fixed: boolean
  /** One sentence for people. */
  readonly message: string
}

export interface PermissionsResult {
  /** True when nothing is left to repair (every finding, if any, was fixed). */
  readonly ok: boolean
  readonly findings: PermissionFinding[]
  readonly checked: { files: number; directories: number }
}

const octal = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, '0')
const MAX_ENTRIES = 1_000_000

/** Test seam: called after an entry is checked and before its mode is changed. */
export interface PermissionsHooks {
  beforeFix?: (path: string) => Promise<void> | void
}

/**
 * How an entry is reached. Each entry is opened once without following a link (`O_NOFOLLOW`) and
 * every check and repair works on that descriptor, so a file swapped for a link between the check
 * and the fix is never what gets changed. On Linux the walk is pinned all the way down: an entry
 * is opened through its parent directory's descriptor (`/proc/self/fd/N/name`, which is openat),
 * with `O_PATH` (no read permission needed, no FIFO blocks), and its mode set through its own
 * descriptor; a directory swapped for a link mid-walk changes nothing either. Elsewhere only the
 * last component is protected: the parent is reached by its path.
 */
interface Access {
  /** Open an entry without following it; undefined when it is a link that cannot be opened (ELOOP). */
  open(parent: Entry | undefined, name: string, follow: boolean): Promise<FileHandle | undefined>
  chmod(handle: FileHandle, mode: number): Promise<void>
  list(entry: Entry): Promise<string[]>
  path(parent: Entry | undefined, name: string): string
}

interface Entry {
  handle: FileHandle
  /** The path as reached, for listing when descriptors cannot be (not Linux). */
  abs: string
}

const O_PATH = 0o10000000 // Linux only; not in fs.constants

const procFd = (h: FileHandle): string => `/proc/self/fd/${h.fd}`

const linuxAccess: Access = {
  async open(parent, name, follow) {
    return open(parent ? `${procFd(parent.handle)}/${name}` : name, O_PATH | (follow ? 0 : constants.O_NOFOLLOW))
  },
  // chmod through the descriptor's /proc link changes that very inode (fchmod refuses O_PATH).
  chmod: (handle, mode) => chmod(procFd(handle), mode),
  list: async (entry) => (await readdir(procFd(entry.handle))).sort(),
  path: (parent, name) => (parent ? join(parent.abs, name) : name),
}

const portableAccess: Access = {
  async open(parent, name, follow) {
    const flags = constants.O_RDONLY | constants.O_NONBLOCK | (follow ? 0 : constants.O_NOFOLLOW)
    try {
      return await open(parent ? join(parent.abs, name) : name, flags)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOOP' || (err as NodeJS.ErrnoException).code === 'EMLINK') return undefined
      throw err
    }
  },
  chmod: (handle, mode) => handle.chmod(mode),
  list: async (entry) => (await readdir(entry.abs)).sort(),
  path: (parent, name) => (parent ? join(parent.abs, name) : name),
}

const pinned = process.platform === 'linux' && existsSync('/proc/self/fd')

/**
 * Check that every file under `paths` has mode `fileMode` (0600) and every directory `dirMode`
 * (0700), owned by `owner`; symbolic links and special files are reported and never followed. With
 * `fix`, modes are repaired (owners and links are not: they need a person).
 */
export async function checkPermissions(options: CheckPermissionsOptions): Promise<PermissionsResult> {
  return walkPermissions(options, {})
}

export async function walkPermissions(options: CheckPermissionsOptions, hooks: PermissionsHooks): Promise<PermissionsResult> {
  const config = resolvePermissionsConfig(options)
  const access = pinned ? linuxAccess : portableAccess
  const findings: PermissionFinding[] = []
  const checked = { files: 0, directories: 0 }
  const posix = process.platform !== 'win32'
  let seen = 0

  const checkOwner = (rel: string, st: Stats): void => {
    if (!posix || config.owner === undefined || st.uid === config.owner) return
    findings.push({
      path: rel,
      kind: 'owner',
      expected: `uid ${config.owner}`,
      actual: `uid ${st.uid}`,
      fixed: false,
      message: `${rel} is owned by uid ${st.uid}, expected uid ${config.owner} (chown it to the user that runs the gateway)`,
    })
  }

  const checkMode = async (handle: FileHandle, rel: string, st: Stats, isDir: boolean): Promise<void> => {
    const want = isDir ? config.dirMode : config.fileMode
    const have = st.mode & 0o7777
    if (!posix || have === want) return
    let fixed = false
    if (config.fix) {
      try {
        await hooks.beforeFix?.(rel)
        await access.chmod(handle, want)
        fixed = ((await handle.stat()).mode & 0o7777) === want
      } catch {
        fixed = false
      }
    }
    const what = isDir ? 'directory' : 'file'
    findings.push({
      path: rel,
      kind: isDir ? 'directory-mode' : 'file-mode',
      expected: octal(want),
      actual: octal(have),
      fixed,
      message: fixed
        ? `fixed ${rel}: ${what} mode ${octal(have)} -> ${octal(want)}`
        : `${rel}: ${what} mode ${octal(have)}, expected ${octal(want)}`,
    })
  }

  const unreadable = (rel: string, message: string): void => {
    findings.push({ path: rel, kind: 'unreadable', fixed: false, message })
  }

  const symlink = (rel: string): void => {
    findings.push({
      path: rel,
      kind: 'symlink',
      fixed: false,
      message: `${rel} is a symbolic link; credential files must be regular files (replace it with the file itself)`,
    })
  }

  /** Check one opened entry; a directory's children are opened through it, one at a time. */
  const visit = async (entry: Entry, st: Stats): Promise<void> => {
    seen++
    const rel = displayPath(config.cwd, entry.abs)
    if (st.isSymbolicLink()) return symlink(rel)
    if (st.isFile()) {
      checked.files++
      checkOwner(rel, st)
      return checkMode(entry.handle, rel, st, false)
    }
    if (!st.isDirectory()) {
      findings.push({
        path: rel,
        kind: 'special-file',
        fixed: false,
        message: `${rel} is not a regular file or directory (a FIFO, socket or device); remove it`,
      })
      return
    }
    checked.directories++
    checkOwner(rel, st)
    // Fix the directory first, so a 0000 directory can be listed afterwards.
    await checkMode(entry.handle, rel, st, true)
    let names: string[]
    try {
      names = await access.list(entry)
    } catch {
      return unreadable(rel, `${rel}: directory cannot be listed`)
    }
    for (const name of names) {
      if (seen >= MAX_ENTRIES) return
      const abs = access.path(entry, name)
      const childRel = displayPath(config.cwd, abs)
      let handle: FileHandle | undefined
      try {
        handle = await access.open(entry, name, false)
      } catch {
        unreadable(childRel, `${childRel}: cannot be read`)
        continue
      }
      if (!handle) {
        seen++
        symlink(childRel)
        continue
      }
      try {
        await visit({ handle, abs }, await handle.stat())
      } finally {
        await handle.close()
      }
    }
  }

  for (const p of config.paths) {
    const root = resolve(config.cwd, p)
    let handle: FileHandle | undefined
    let st: Stats
    try {
      // A named path is followed (auths/ may itself be a mounted link); links inside are not.
      handle = await access.open(undefined, root, true)
      if (!handle) throw new Error('unreachable')
      st = await handle.stat()
    } catch {
      await handle?.close()
      throw new GatehouseError(
        SecurityCheckErrorCodes.GH_SC_PATH_NOT_FOUND,
        `${PKG}: ${JSON.stringify(p)} does not exist or cannot be read`,
        400,
      )
    }
    try {
      await visit({ handle, abs: root }, st)
    } finally {
      await handle.close()
    }
  }
  return { ok: findings.every((f) => f.fixed), findings, checked }
}
