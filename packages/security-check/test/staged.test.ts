import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { scanSecrets, SecurityCheckErrorCodes } from '../src'
import { parseAddedLines, unquoteGitPath } from '../src/secrets/staged'
import { FAKE_KEYS, expectMasked, runCli, tempDir } from './helpers'

const git = (cwd: string, ...args: string[]): string =>
  execFileSync(
    'git',
    [
      '-c',
      'user.name=Gatehouse Test',
      '-c',
      'user.email=test@gatehouse.invalid',
      '-c',
      'commit.gpgsign=false',
      ...args,
    ],
    {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: cwd },
    },
  )

describe('secrets --staged in a real git repository', () => {
  let dir: string
  let cleanup: () => void
  let committed: string

  beforeEach(() => {
    ;({ dir, cleanup } = tempDir())
    git(dir, 'init', '-q')
    committed = FAKE_KEYS['github-token']!()
    // A key already in history, in a file the next change edits: only added lines count.
    writeFileSync(
      join(dir, 'config.ts'),
      `export const a = 1\nexport const old = '${committed}'\nexport const b = 2\n`,
    )
    git(dir, 'add', '-A')
    git(dir, 'commit', '-q', '-m', 'initial')
  })
  afterEach(() => cleanup())

  it('reports keys on added lines only, with their line numbers in the staged file', async () => {
    const added = FAKE_KEYS['anthropic-api-key']!()
    writeFileSync(
      join(dir, 'config.ts'),
      `export const a = 1\nexport const old = '${committed}'\nexport const key = '${added}'\nexport const b = 2\n`,
    )
    git(dir, 'add', 'config.ts')
    const result = await scanSecrets({ cwd: dir, staged: true })
    expect(result.findings.map((f) => [f.file, f.line, f.rule])).toEqual([
      ['config.ts', 3, 'anthropic-api-key'],
    ])
    expect(result.staged).toBe(true)
    expect(result.files).toBe(1)
    expectMasked(JSON.stringify(result), [added, committed])
  })

  it('ignores changes that are not staged, and new files until they are added', async () => {
    writeFileSync(join(dir, 'new.env'), `KEY=${FAKE_KEYS['npm-token']!()}\n`)
    writeFileSync(join(dir, 'config.ts'), `export const x = '${FAKE_KEYS['npm-token']!()}'\n`)
    expect((await scanSecrets({ cwd: dir, staged: true })).findings).toEqual([])
    git(dir, 'add', 'new.env')
    const r = await scanSecrets({ cwd: dir, staged: true })
    expect(r.findings.map((f) => [f.file, f.line])).toEqual([['new.env', 1]])
  })

  it('handles file names with spaces, quotes and non-ASCII, and reports paths relative to a subdirectory', async () => {
    mkdirSync(join(dir, 'sub dir'))
    const names = ['sub dir/we ird"name.env', 'sub dir/ünïcode.env']
    for (const n of names) writeFileSync(join(dir, n), `X=${FAKE_KEYS['groq-api-key']!()}\n`)
    git(dir, 'add', '-A')
    const r = await scanSecrets({ cwd: dir, staged: true })
    expect(r.findings.map((f) => f.file).sort()).toEqual([...names].sort())
    const inSub = await scanSecrets({ cwd: join(dir, 'sub dir'), staged: true })
    expect(inSub.findings.map((f) => f.file).sort()).toEqual(['we ird"name.env', 'ünïcode.env'])
  })

  it('skips staged binary files and honours allow comments on added lines', async () => {
    writeFileSync(
      join(dir, 'blob.bin'),
      Buffer.concat([Buffer.from([0, 1, 2, 0]), Buffer.from(FAKE_KEYS['npm-token']!())]),
    )
    writeFileSync(
      join(dir, 'fixture.ts'),
      `// gatehouse-check:allow-next-line\nconst k = '${FAKE_KEYS['npm-token']!()}'\n`,
    )
    git(dir, 'add', '-A')
    const r = await scanSecrets({ cwd: dir, staged: true })
    expect(r.findings).toEqual([])
    expect(r.skipped.binary).toBe(1)
    expect(r.suppressed.inline).toBe(1)
  })

  it('limits the staged scan to a pathspec', async () => {
    mkdirSync(join(dir, 'a'))
    mkdirSync(join(dir, 'b'))
    writeFileSync(join(dir, 'a', 'k.env'), `K=${FAKE_KEYS['npm-token']!()}\n`)
    writeFileSync(join(dir, 'b', 'k.env'), `K=${FAKE_KEYS['npm-token']!()}\n`)
    git(dir, 'add', '-A')
    const r = await scanSecrets({ cwd: dir, staged: true, paths: ['b'] })
    expect(r.findings.map((f) => f.file)).toEqual(['b/k.env'])
  })

  it('exits 1 from the CLI with masked output, and 0 once the key is unstaged', async () => {
    const key = FAKE_KEYS['aws-access-key-id']!()
    writeFileSync(join(dir, 'deploy.yaml'), `aws:\n  access_key_id: ${key}\n`)
    git(dir, 'add', 'deploy.yaml')
    const bad = await runCli(['secrets', '--staged'], { cwd: dir })
    expect(bad.code).toBe(1)
    expect(bad.stdout).toContain('deploy.yaml:2:18  aws-access-key-id  AKIA****')
    expect(bad.stdout).toContain('1 finding in 1 file staged')
    expectMasked(bad.stdout + bad.stderr, [key])
    git(dir, 'reset', '-q', 'deploy.yaml')
    const good = await runCli(['secrets', '--staged'], { cwd: dir })
    expect(good.code).toBe(0)
  })

  it('refuses --staged outside a git repository with GH_SC_NOT_A_GIT_REPO (exit 2)', async () => {
    const outside = tempDir()
    try {
      await expect(scanSecrets({ cwd: outside.dir, staged: true })).rejects.toMatchObject({
        code: SecurityCheckErrorCodes.GH_SC_NOT_A_GIT_REPO,
      })
      const r = await runCli(['secrets', '--staged'], { cwd: outside.dir })
      expect(r.code).toBe(2)
      expect(r.stderr).toContain('not inside a git work tree')
    } finally {
      outside.cleanup()
    }
  })
})

describe('staged diff parsing', () => {
  it('unquotes git C-style paths', () => {
    expect(unquoteGitPath('"b/tab\\tname.txt"')).toBe('b/tab\tname.txt')
    expect(unquoteGitPath('"b/\\303\\274.txt"')).toBe('b/ü.txt')
    expect(unquoteGitPath('"b/q\\"x"')).toBe('b/q"x')
    expect(unquoteGitPath('b/plain.txt')).toBe('b/plain.txt')
  })

  it('does not take an added line that starts with "++ " for a file header', () => {
    const diff = [
      'diff --git a/x b/x',
      '--- a/x',
      '+++ b/x',
      '@@ -1,0 +2,2 @@',
      '+++ not a header',
      '+second',
      '\\ No newline at end of file',
    ].join('\n')
    expect(parseAddedLines(diff)).toEqual([
      { path: 'x', binary: false, hunks: [{ firstLine: 2, lines: ['++ not a header', 'second'] }] },
    ])
  })
})
