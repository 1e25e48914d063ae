import { execFileSync } from 'node:child_process'
import { chmodSync, chownSync, lstatSync, mkdirSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { checkPermissions, SecurityCheckErrorCodes } from '../src'
import { walkPermissions } from '../src/permissions'
import { runCli, tempDir } from './helpers'

const mode = (p: string): number => statSync(p).mode & 0o7777
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
const hasMkfifo = (() => {
  try {
    execFileSync('mkfifo', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

/** Per test: a project directory holding a correct auths tree (0700 directories, 0600 files). */
function authTreePerTest(): () => { dir: string; auths: string } {
  let dir = ''
  let cleanup = (): void => undefined
  beforeEach(() => {
    ;({ dir, cleanup } = tempDir())
    const auths = join(dir, 'auths')
    mkdirSync(join(auths, 'claude'), { recursive: true, mode: 0o700 })
    chmodSync(auths, 0o700)
    chmodSync(join(auths, 'claude'), 0o700)
    writeFileSync(join(auths, 'openai.json'), '{}', { mode: 0o600 })
    writeFileSync(join(auths, 'claude', 'oauth.json'), '{}', { mode: 0o600 })
  })
  afterEach(() => cleanup())
  return () => ({ dir, auths: join(dir, 'auths') })
}

describe('checkPermissions: modes and fixes', () => {
  let dir: string
  let auths: string
  const tree = authTreePerTest()
  beforeEach(() => {
    ;({ dir, auths } = tree())
  })

  it('passes a tree of 0600 files and 0700 directories', async () => {
    const result = await checkPermissions({ paths: ['auths'], cwd: dir })
    expect(result).toEqual({ ok: true, findings: [], checked: { files: 2, directories: 2 } })
    const cli = await runCli(['permissions', 'auths'], { cwd: dir })
    expect(cli.code).toBe(0)
    expect(cli.stdout).toBe('gatehouse-check permissions: ok (2 files, 2 directories checked)\n')
  })

  it('reports a group-readable file, a world-readable directory, an executable file and a setuid bit', async () => {
    chmodSync(join(auths, 'openai.json'), 0o640)
    chmodSync(join(auths, 'claude'), 0o755)
    writeFileSync(join(auths, 'claude', 'run.sh'), '', { mode: 0o700 })
    chmodSync(join(auths, 'claude', 'run.sh'), 0o700)
    writeFileSync(join(auths, 'suid'), '')
    chmodSync(join(auths, 'suid'), 0o4600)
    const result = await checkPermissions({ paths: ['auths'], cwd: dir })
    expect(result.ok).toBe(false)
    expect(result.findings.map((f) => [f.path, f.kind, f.actual, f.expected, f.fixed])).toEqual([
      ['auths/claude', 'directory-mode', '0755', '0700', false],
      ['auths/claude/run.sh', 'file-mode', '0700', '0600', false],
      ['auths/openai.json', 'file-mode', '0640', '0600', false],
      ['auths/suid', 'file-mode', '4600', '0600', false],
    ])
    // Nothing was changed without --fix.
    expect(mode(join(auths, 'openai.json'))).toBe(0o640)
    const cli = await runCli(['permissions', 'auths'], { cwd: dir })
    expect(cli.code).toBe(1)
    expect(cli.stdout).toContain('auths/openai.json: file mode 0640, expected 0600\n')
    expect(cli.stdout).toContain('gatehouse-check permissions: 4 findings (')
  })

  it('repairs modes with --fix, says what it changed, and exits 0 when all is repaired', async () => {
    chmodSync(join(auths, 'openai.json'), 0o644)
    chmodSync(join(auths, 'claude'), 0o000)
    const cli = await runCli(['permissions', 'auths', '--fix'], { cwd: dir })
    expect(cli.stdout).toContain('fixed auths/claude: directory mode 0000 -> 0700\n')
    expect(cli.stdout).toContain('fixed auths/openai.json: file mode 0644 -> 0600\n')
    expect(cli.stdout).toContain('gatehouse-check permissions: ok, 2 fixed')
    expect(cli.code).toBe(0)
    expect(mode(join(auths, 'openai.json'))).toBe(0o600)
    expect(mode(join(auths, 'claude'))).toBe(0o700)
    // The 0000 directory is repaired before it is listed, so its file is checked too (as any user).
    expect(cli.stdout).toContain('(2 files, 2 directories checked)')
    const again = await checkPermissions({ paths: ['auths'], cwd: dir })
    expect(again.findings).toEqual([])
  })

  it('reports symbolic links (never followed, never fixed), and exits 1 with --fix', async () => {
    const outside = join(dir, 'elsewhere.json')
    writeFileSync(outside, '{}', { mode: 0o644 })
    symlinkSync(outside, join(auths, 'linked.json'))
    symlinkSync(join(dir), join(auths, 'loop'))
    const result = await checkPermissions({ paths: ['auths'], cwd: dir, fix: true })
    expect(result.findings.map((f) => [f.path, f.kind, f.fixed])).toEqual([
      ['auths/linked.json', 'symlink', false],
      ['auths/loop', 'symlink', false],
    ])
    expect(result.ok).toBe(false)
    // The link target was not touched.
    expect(mode(outside)).toBe(0o644)
    expect(lstatSync(join(auths, 'linked.json')).isSymbolicLink()).toBe(true)
    const cli = await runCli(['permissions', 'auths', '--fix'], { cwd: dir })
    expect(cli.code).toBe(1)
    expect(cli.stdout).toContain('auths/linked.json is a symbolic link')
  })
})

describe('checkPermissions: links and races', () => {
  let dir: string
  let auths: string
  const tree = authTreePerTest()
  beforeEach(() => {
    ;({ dir, auths } = tree())
  })

  it('never changes a link target when a file is swapped for a link between the check and the fix', async () => {
    const target = join(dir, 'target.json')
    writeFileSync(target, '{}', { mode: 0o644 })
    chmodSync(target, 0o644)
    chmodSync(join(auths, 'openai.json'), 0o644)
    const swapped: string[] = []
    const result = await walkPermissions(
      { paths: ['auths'], cwd: dir, fix: true },
      {
        beforeFix: (path) => {
          if (path !== 'auths/openai.json') return
          renameSync(join(auths, 'openai.json'), join(dir, 'moved-away.json'))
          symlinkSync(target, join(auths, 'openai.json'))
          swapped.push(path)
        },
      },
    )
    expect(swapped).toEqual(['auths/openai.json'])
    expect(mode(target)).toBe(0o644)
    // The file that was checked is the one that was repaired, wherever it went.
    expect(mode(join(dir, 'moved-away.json'))).toBe(0o600)
    expect(result.findings.map((f) => [f.path, f.kind, f.fixed])).toEqual([['auths/openai.json', 'file-mode', true]])
    // The next run finds the link and leaves it alone.
    const again = await checkPermissions({ paths: ['auths'], cwd: dir, fix: true })
    expect(again.findings.map((f) => [f.path, f.kind, f.fixed])).toEqual([['auths/openai.json', 'symlink', false]])
    expect(mode(target)).toBe(0o644)
  })

  ;(process.platform === 'linux' ? it : it.skip)('never descends into a link when a directory is swapped for one mid-walk (Linux: the walk holds descriptors)', async () => {
    const outside = join(dir, 'outside')
    mkdirSync(outside)
    chmodSync(outside, 0o755)
    writeFileSync(join(outside, 'secret.json'), '{}', { mode: 0o644 })
    chmodSync(join(outside, 'secret.json'), 0o644)
    chmodSync(join(auths, 'claude'), 0o755)
    chmodSync(join(auths, 'claude', 'oauth.json'), 0o644)
    const result = await walkPermissions(
      { paths: ['auths'], cwd: dir, fix: true },
      {
        beforeFix: (path) => {
          if (path !== 'auths/claude') return
          renameSync(join(auths, 'claude'), join(dir, 'claude-moved'))
          symlinkSync(outside, join(auths, 'claude'))
        },
      },
    )
    expect(mode(outside)).toBe(0o755)
    expect(mode(join(outside, 'secret.json'))).toBe(0o644)
    expect(mode(join(dir, 'claude-moved'))).toBe(0o700)
    expect(mode(join(dir, 'claude-moved', 'oauth.json'))).toBe(0o600)
    expect(result.findings.map((f) => [f.path, f.kind, f.fixed])).toEqual([
      ['auths/claude', 'directory-mode', true],
      ['auths/claude/oauth.json', 'file-mode', true],
    ])
  })

  it('follows a named directory that is itself a link (a mounted auth volume)', async () => {
    symlinkSync(auths, join(dir, 'auths-link'))
    const result = await checkPermissions({ paths: ['auths-link'], cwd: dir })
    expect(result).toMatchObject({ ok: true, checked: { files: 2, directories: 2 } })
  })

  ;(isRoot ? it : it.skip)('reports files owned by another user', async () => {
    chownSync(join(auths, 'openai.json'), 4242, 4242)
    const result = await checkPermissions({ paths: ['auths'], cwd: dir, fix: true })
    expect(result.findings).toEqual([
      {
        path: 'auths/openai.json',
        kind: 'owner',
        expected: 'uid 0',
        actual: 'uid 4242',
        fixed: false,
        message:
          'auths/openai.json is owned by uid 4242, expected uid 0 (chown it to the user that runs the gateway)',
      },
    ])
    // --owner names the expected uid (a container user, say).
    const asOwner = await runCli(['permissions', 'auths', '--owner', '4242'], { cwd: dir })
    expect(asOwner.code).toBe(1)
    expect(asOwner.stdout).toContain('auths/claude is owned by uid 0, expected uid 4242')
  })

  ;(hasMkfifo ? it : it.skip)('reports a FIFO without opening it', async () => {
    execFileSync('mkfifo', ['-m', '600', join(auths, 'pipe')])
    const result = await checkPermissions({ paths: ['auths'], cwd: dir })
    expect(result.findings.map((f) => [f.path, f.kind])).toEqual([['auths/pipe', 'special-file']])
  })
})

describe('checkPermissions: named paths and usage errors', () => {
  let dir: string
  let auths: string
  const tree = authTreePerTest()
  beforeEach(() => {
    ;({ dir, auths } = tree())
  })

  it('checks a single named file', async () => {
    chmodSync(join(auths, 'openai.json'), 0o604)
    const result = await checkPermissions({ paths: ['auths/openai.json'], cwd: dir })
    expect(result.findings.map((f) => f.actual)).toEqual(['0604'])
    expect(result.checked).toEqual({ files: 1, directories: 0 })
  })

  it('refuses a directory that does not exist (GH_SC_PATH_NOT_FOUND, exit 2) and no directory at all (exit 2)', async () => {
    await expect(checkPermissions({ paths: ['missing'], cwd: dir })).rejects.toMatchObject({
      code: SecurityCheckErrorCodes.GH_SC_PATH_NOT_FOUND,
    })
    const missing = await runCli(['permissions', 'missing'], { cwd: dir })
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('"missing" does not exist')
    const none = await runCli(['permissions'], { cwd: dir })
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('name at least one directory')
    const badOwner = await runCli(['permissions', 'auths', '--owner', 'root'], { cwd: dir })
    expect(badOwner.code).toBe(2)
  })
})
