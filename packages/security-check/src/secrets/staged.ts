import { execFile } from 'node:child_process'
import { GatehouseError } from '@gatehouse/core'
import { PKG, SecurityCheckErrorCodes } from '../errors'

/** A run of consecutive lines that the staged diff adds to one file. */
export interface AddedHunk {
  /** Line number (in the staged file) of the first line. */
  readonly firstLine: number
  readonly lines: string[]
}

export interface StagedFile {
  /** Path relative to the repository root, forward slashes. */
  readonly path: string
  readonly hunks: AddedHunk[]
  /** git reported "Binary files … differ". */
  binary: boolean
}

const GIT_TIMEOUT_MS = 60_000
const GIT_MAX_BUFFER = 512 * 1024 * 1024

/** Run git in `cwd`; resolves stdout, rejects with a GatehouseError that names the failure. */
export function git(cwd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      'git',
      [...args],
      { cwd, timeout: GIT_TIMEOUT_MS, maxBuffer: GIT_MAX_BUFFER, windowsHide: true, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (!err) {
          resolvePromise(stdout)
          return
        }
        const e = err as NodeJS.ErrnoException & { code?: unknown }
        if (e.code === 'ENOENT') {
          reject(
            new GatehouseError(
              SecurityCheckErrorCodes.GH_SC_GIT_FAILED,
              `${PKG}: git is not installed or not on PATH`,
              500,
            ),
          )
          return
        }
        const text = String(stderr).trim()
        if (/not a git repository/i.test(text)) {
          reject(
            new GatehouseError(
              SecurityCheckErrorCodes.GH_SC_NOT_A_GIT_REPO,
              `${PKG}: ${cwd} is not inside a git work tree`,
              400,
            ),
          )
          return
        }
        reject(
          new GatehouseError(
            SecurityCheckErrorCodes.GH_SC_GIT_FAILED,
            `${PKG}: git ${args[0] ?? ''} failed: ${text.split('\n')[0] ?? 'unknown error'}`,
            500,
          ),
        )
      },
    )
  })
}

const ESCAPES: Record<string, number> = { a: 7, b: 8, t: 9, n: 10, v: 11, f: 12, r: 13, '"': 34, '\\': 92 }

/** Undo git's C-style quoting of a path (`"tab\tname"`, octal escapes for raw bytes). */
export function unquoteGitPath(raw: string): string {
  if (!(raw.startsWith('"') && raw.endsWith('"') && raw.length >= 2)) return raw
  const inner = raw.slice(1, -1)
  const bytes: number[] = []
  for (let i = 0; i < inner.length; i++) {
    const ch = inner[i]!
    if (ch !== '\\') {
      for (const b of Buffer.from(ch, 'utf8')) bytes.push(b)
      continue
    }
    const next = inner[i + 1] ?? ''
    if (/[0-7]/.test(next)) {
      const oct = /^[0-7]{1,3}/.exec(inner.slice(i + 1))![0]
      bytes.push(parseInt(oct, 8) & 0xff)
      i += oct.length
    } else if (next in ESCAPES) {
      bytes.push(ESCAPES[next]!)
      i += 1
    } else {
      bytes.push(92)
    }
  }
  return Buffer.from(bytes).toString('utf8')
}

/** The new-side path of a `+++ b/…` line, or undefined for /dev/null. */
function newPath(header: string): string | undefined {
  let p = header.slice(4)
  if (p.endsWith('\t')) p = p.slice(0, -1)
  if (p === '/dev/null') return undefined
  p = unquoteGitPath(p)
  return p.startsWith('b/') ? p.slice(2) : p
}

/** Parse `git diff --unified=0` output into the lines each file gains. */
export function parseAddedLines(diff: string): StagedFile[] {
  const files: StagedFile[] = []
  let current: StagedFile | undefined
  let hunk: AddedHunk | undefined
  let nextLine = 0
  let inHunk = false
  for (const line of diff.split('\n')) {
    if (line.startsWith('diff --git ')) {
      current = undefined
      hunk = undefined
      inHunk = false
      continue
    }
    if (!inHunk && line.startsWith('+++ ')) {
      const p = newPath(line)
      current = p === undefined ? undefined : { path: p, hunks: [], binary: false }
      if (current) files.push(current)
      continue
    }
    if (!inHunk && line.startsWith('Binary files ') && line.endsWith(' differ')) {
      const m = / and (.+) differ$/.exec(line)
      const p = m ? unquoteGitPath(m[1]!) : undefined
      if (p !== undefined && p !== '/dev/null')
        files.push({ path: p.startsWith('b/') ? p.slice(2) : p, hunks: [], binary: true })
      continue
    }
    if (line.startsWith('@@ ')) {
      const m = /^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line)
      inHunk = m !== null && current !== undefined
      nextLine = m ? Number(m[1]) : 0
      hunk = undefined
      continue
    }
    if (!inHunk || current === undefined) continue
    if (line.startsWith('+')) {
      if (hunk === undefined) {
        hunk = { firstLine: nextLine, lines: [] }
        current.hunks.push(hunk)
      }
      hunk.lines.push(line.slice(1))
      nextLine++
    } else if (line.startsWith(' ')) {
      hunk = undefined
      nextLine++
    } else if (line.startsWith('-') || line.startsWith('\\')) {
      // removed lines and "\ No newline at end of file" do not move the new side
      if (line.startsWith('-')) hunk = undefined
    } else {
      inHunk = false
    }
  }
  return files
}

/** The repository root of `cwd`, and the lines the staged changes add. */
export async function readStaged(
  cwd: string,
  pathspec: readonly string[],
): Promise<{ root: string; files: StagedFile[] }> {
  const root = (await git(cwd, ['rev-parse', '--show-toplevel'])).trim()
  const diff = await git(cwd, [
    '-c',
    'core.quotepath=off',
    'diff',
    '--cached',
    '--no-color',
    '--no-ext-diff',
    '--no-textconv',
    '--unified=0',
    '--diff-filter=ACMRT',
    '--src-prefix=a/',
    '--dst-prefix=b/',
    '--',
    ...pathspec,
  ])
  return { root, files: parseAddedLines(diff) }
}
