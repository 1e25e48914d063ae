import { chmod, lstat, readdir, stat } from 'node:fs/promises'
import type { Stats } from 'node:fs'
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

/**
 * Check that every file under `paths` has mode `fileMode` (0600) and every directory `dirMode`
 * (0700), owned by `owner`; symbolic links and special files are reported and never followed. With
 * `fix`, modes are repaired (owners and links are not: they need a person).
 */
export async function checkPermissions(options: CheckPermissionsOptions): Promise<PermissionsResult> {
  const config = resolvePermissionsConfig(options)
  const findings: PermissionFinding[] = []
  const checked = { files: 0, directories: 0 }
  const posix = process.platform !== 'win32'

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

  const checkMode = async (abs: string, rel: string, st: Stats, isDir: boolean): Promise<void> => {
    const want = isDir ? config.dirMode : config.fileMode
    const have = st.mode & 0o7777
    if (!posix || have === want) return
    let fixed = false
    if (config.fix) {
      try {
        await chmod(abs, want)
        fixed = ((await lstat(abs)).mode & 0o7777) === want
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

  for (const p of config.paths) {
    const root = resolve(config.cwd, p)
    let st: Stats
    try {
      // A named path is followed (auths/ may itself be a mounted link); links inside are not.
      st = await stat(root)
    } catch {
      throw new GatehouseError(
        SecurityCheckErrorCodes.GH_SC_PATH_NOT_FOUND,
        `${PKG}: ${JSON.stringify(p)} does not exist or cannot be read`,
        400,
      )
    }
    const stack: Array<{ abs: string; st: Stats }> = [{ abs: root, st }]
    let seen = 0
    while (stack.length > 0 && seen < MAX_ENTRIES) {
      const { abs, st: s } = stack.pop()!
      seen++
      const rel = displayPath(config.cwd, abs)
      if (s.isSymbolicLink()) {
        findings.push({
          path: rel,
          kind: 'symlink',
          fixed: false,
          message: `${rel} is a symbolic link; credential files must be regular files (replace it with the file itself)`,
        })
        continue
      }
      if (s.isFile()) {
        checked.files++
        checkOwner(rel, s)
        await checkMode(abs, rel, s, false)
        continue
      }
      if (!s.isDirectory()) {
        findings.push({
          path: rel,
          kind: 'special-file',
          fixed: false,
          message: `${rel} is not a regular file or directory (a FIFO, socket or device); remove it`,
        })
        continue
      }
      checked.directories++
      checkOwner(rel, s)
      // Fix the directory first, so a 0000 directory can be listed afterwards.
      await checkMode(abs, rel, s, true)
      let names: string[]
      try {
        names = (await readdir(abs)).sort()
      } catch {
        findings.push({
          path: rel,
          kind: 'unreadable',
          fixed: false,
          message: `${rel}: directory cannot be listed`,
        })
        continue
      }
      const children: Array<{ abs: string; st: Stats }> = []
      for (const name of names) {
        const child = join(abs, name)
        try {
          children.push({ abs: child, st: await lstat(child) })
        } catch {
          findings.push({
            path: displayPath(config.cwd, child),
            kind: 'unreadable',
            fixed: false,
            message: `${displayPath(config.cwd, child)}: cannot be read`,
          })
        }
      }
      for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!)
    }
  }
  return { ok: findings.every((f) => f.fixed), findings, checked }
}
