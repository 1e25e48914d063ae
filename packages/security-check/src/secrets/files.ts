import { existsSync, readFileSync, type Dirent } from 'node:fs'
import { lstat, readdir, stat } from 'node:fs/promises'
import { dirname, join, relative, resolve, sep } from 'node:path'
import ignore, { type Ignore } from 'ignore'
import { GatehouseError } from '@gatehouse/core'
import { PKG, SecurityCheckErrorCodes } from '../errors'

/** What a scan left out, and why. */
export interface SkippedCounts {
  /** Files and directories matched by .gitignore, .git/info/exclude or `exclude` (a directory counts once). */
  ignored: number
  /** Files with a NUL byte in their first 8000 bytes. */
  binary: number
  /** Files larger than `maxFileSize`. */
  tooLarge: number
  /** Symbolic links met while walking (named paths are followed, links inside them are not). */
  symlink: number
  /** FIFOs, sockets and devices. */
  special: number
  /** Files or directories that could not be read. */
  unreadable: number
}

export const emptySkipped = (): SkippedCounts => ({
  ignored: 0,
  binary: 0,
  tooLarge: 0,
  symlink: 0,
  special: 0,
  unreadable: 0,
})

interface Matcher {
  /** Absolute directory the patterns are relative to. */
  readonly base: string
  readonly ig: Ignore
}

/** `a/b` with forward slashes, whatever the platform. */
export const toPosix = (p: string): string => (sep === '/' ? p : p.split(sep).join('/'))

/** The path relative to `cwd` for display (`src/x.ts`), or `.` for cwd itself. */
export const displayPath = (cwd: string, abs: string): string => toPosix(relative(cwd, abs)) || '.'

function loadIgnoreFile(file: string): Ignore | undefined {
  try {
    const text = readFileSync(file, 'utf8')
    return ignore({ ignorecase: false }).add(text)
  } catch {
    return undefined
  }
}

/** The nearest directory at or above `dir` that holds `.git`, or undefined. */
export function findGitRoot(dir: string): string | undefined {
  let d = dir
  for (let i = 0; i < 256; i++) {
    if (existsSync(join(d, '.git'))) return d
    const parent = dirname(d)
    if (parent === d) return undefined
    d = parent
  }
  return undefined
}

/** Is `abs` (a directory when `isDir`) ignored by the matchers, deepest first, as git decides? */
function isIgnored(chain: readonly Matcher[], abs: string, isDir: boolean): boolean {
  for (let i = chain.length - 1; i >= 0; i--) {
    const { base, ig } = chain[i]!
    const rel = relative(base, abs)
    if (rel === '' || rel.startsWith('..') || rel.startsWith(sep) || /^[A-Za-z]:/.test(rel)) continue
    const r = ig.test(toPosix(rel) + (isDir ? '/' : ''))
    if (r.ignored) return true
    if (r.unignored) return false
  }
  return false
}

export interface CollectOptions {
  readonly cwd: string
  readonly gitignore: boolean
  readonly exclude: readonly string[]
}

/**
 * The regular files under `paths` that a scan should read: .gitignore'd entries, `.git/` and
 * symbolic links inside the walked trees are left out (and counted). A path named explicitly is
 * always included, a directory with everything in it that the ignore files inside it do not
 * ignore; a name that does not exist is a usage error.
 */
export async function collectFiles(
  paths: readonly string[],
  options: CollectOptions,
  skipped: SkippedCounts,
): Promise<string[]> {
  const files = new Set<string>()
  const excludeMatcher: Matcher[] =
    options.exclude.length > 0
      ? [{ base: options.cwd, ig: ignore({ ignorecase: false }).add([...options.exclude]) }]
      : []

  for (const p of paths.length > 0 ? paths : ['.']) {
    const abs = resolve(options.cwd, p)
    let st
    try {
      st = await stat(abs)
    } catch {
      throw new GatehouseError(
        SecurityCheckErrorCodes.GH_SC_PATH_NOT_FOUND,
        `${PKG}: ${JSON.stringify(p)} does not exist or cannot be read`,
        400,
      )
    }
    if (st.isFile()) {
      files.add(abs)
      continue
    }
    if (!st.isDirectory()) {
      skipped.special++
      continue
    }
    // The ignore files above the named directory, from the repository root down.
    const chain: Matcher[] = []
    if (options.gitignore) {
      const root = findGitRoot(abs)
      if (root !== undefined) {
        const exclude = loadIgnoreFile(join(root, '.git', 'info', 'exclude'))
        if (exclude) chain.push({ base: root, ig: exclude })
        const ancestors: string[] = []
        if (abs !== root) {
          for (let d = dirname(abs); ; d = dirname(d)) {
            ancestors.unshift(d)
            if (d === root || d === dirname(d)) break
          }
        }
        for (const d of ancestors) {
          const ig = loadIgnoreFile(join(d, '.gitignore'))
          if (ig) chain.push({ base: d, ig })
        }
      }
    }
    // A directory named on purpose is scanned even when an ignore file above it ignores it (a
    // `node_modules` or `dist` named on the command line): otherwise its scan would read nothing
    // and pass. The ignore files inside it still apply.
    const named = isIgnored(chain, abs, true) ? [] : chain
    await walk(abs, named, excludeMatcher, options.gitignore, files, skipped)
  }
  return [...files]
}

async function walk(
  rootDir: string,
  baseChain: readonly Matcher[],
  excludeMatcher: readonly Matcher[],
  gitignore: boolean,
  files: Set<string>,
  skipped: SkippedCounts,
): Promise<void> {
  const stack: Array<{ dir: string; chain: readonly Matcher[] }> = [{ dir: rootDir, chain: baseChain }]
  while (stack.length > 0) {
    const { dir, chain: parentChain } = stack.pop()!
    let chain = parentChain
    if (gitignore) {
      const ig = loadIgnoreFile(join(dir, '.gitignore'))
      if (ig) chain = [...parentChain, { base: dir, ig }]
    }
    let entries: Dirent[]
    try {
      entries = await readdir(dir, { withFileTypes: true })
    } catch {
      skipped.unreadable++
      continue
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    const subdirs: string[] = []
    for (const e of entries) {
      const abs = join(dir, e.name)
      let kind: 'file' | 'dir' | 'link' | 'other'
      if (e.isSymbolicLink()) kind = 'link'
      else if (e.isDirectory()) kind = 'dir'
      else if (e.isFile()) kind = 'file'
      else if (e.isFIFO() || e.isSocket() || e.isBlockDevice() || e.isCharacterDevice()) kind = 'other'
      else {
        // Some file systems do not report the type in readdir.
        try {
          const s = await lstat(abs)
          kind = s.isSymbolicLink() ? 'link' : s.isDirectory() ? 'dir' : s.isFile() ? 'file' : 'other'
        } catch {
          skipped.unreadable++
          continue
        }
      }
      if (kind === 'dir' && e.name === '.git') continue
      if (isIgnored(chain, abs, kind === 'dir') || isIgnored(excludeMatcher, abs, kind === 'dir')) {
        skipped.ignored++
        continue
      }
      if (kind === 'link') skipped.symlink++
      else if (kind === 'other') skipped.special++
      else if (kind === 'dir') subdirs.push(abs)
      else files.add(abs)
    }
    // Depth-first, in name order.
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push({ dir: subdirs[i]!, chain })
  }
}
