import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { installHook, HOOK_MARKER, SecurityCheckErrorCodes } from '../src'
import { CLI, FAKE_KEYS, ensureBuilt, expectMasked, runCli, tempDir } from './helpers'

const ENV = { ...process.env, GIT_CONFIG_NOSYSTEM: '1' }
const gitArgs = [
  '-c',
  'user.name=Gatehouse Test',
  '-c',
  'user.email=test@gatehouse.invalid',
  '-c',
  'commit.gpgsign=false',
]
const git = (cwd: string, ...args: string[]): string =>
  execFileSync('git', [...gitArgs, ...args], { cwd, encoding: 'utf8', env: ENV })

describe('install-hook', () => {
  let dir: string
  let cleanup: () => void
  let hook: string

  beforeEach(() => {
    ;({ dir, cleanup } = tempDir())
    git(dir, 'init', '-q')
    hook = join(dir, '.git', 'hooks', 'pre-commit')
  })
  afterEach(() => cleanup())

  it('writes an executable pre-commit hook that runs secrets --staged, and rewrites its own hook', async () => {
    const first = await runCli(['install-hook'], { cwd: dir })
    expect(first.code).toBe(0)
    expect(first.stdout).toContain(`created ${hook}`)
    const script = readFileSync(hook, 'utf8')
    expect(script.startsWith('#!/bin/sh\n')).toBe(true)
    expect(script).toContain(HOOK_MARKER)
    expect(script).toContain('secrets --staged')
    expect(statSync(hook).mode & 0o777).toBe(0o755)
    const again = await installHook({ cwd: dir })
    expect(again).toEqual({ path: hook, action: 'updated' })
  })

  it('refuses to overwrite a foreign hook (exit 1, hook untouched) unless --force, which keeps a backup', async () => {
    writeFileSync(hook, '#!/bin/sh\nnpm run lint\n', { mode: 0o755 })
    const refused = await runCli(['install-hook'], { cwd: dir })
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('already exists and was not written by gatehouse-check')
    expect(readFileSync(hook, 'utf8')).toBe('#!/bin/sh\nnpm run lint\n')
    await expect(installHook({ cwd: dir })).rejects.toMatchObject({
      code: SecurityCheckErrorCodes.GH_SC_HOOK_EXISTS,
    })

    const forced = await runCli(['install-hook', '--force'], { cwd: dir })
    expect(forced.code).toBe(0)
    expect(forced.stdout).toContain(`the previous hook is kept as ${hook}.bak`)
    expect(readFileSync(`${hook}.bak`, 'utf8')).toBe('#!/bin/sh\nnpm run lint\n')
    expect(readFileSync(hook, 'utf8')).toContain(HOOK_MARKER)
  })

  it('exits 2 outside a git repository', async () => {
    const outside = tempDir()
    try {
      const r = await runCli(['install-hook'], { cwd: outside.dir })
      expect(r.code).toBe(2)
      expect(r.stderr).toContain('not inside a git work tree')
      expect(existsSync(join(outside.dir, '.git'))).toBe(false)
    } finally {
      outside.cleanup()
    }
  })

  it('blocks a real commit that adds a key, with masked output, and lets a clean commit through', async () => {
    ensureBuilt()
    await installHook({ cwd: dir, cliPath: CLI })
    const key = FAKE_KEYS['openai-project-key']!()
    writeFileSync(join(dir, 'settings.json'), JSON.stringify({ openai: { api_key: key } }, null, 2))
    git(dir, 'add', 'settings.json')
    const blocked = spawnSync('git', [...gitArgs, 'commit', '-q', '-m', 'add settings'], {
      cwd: dir,
      encoding: 'utf8',
      env: ENV,
      timeout: 30_000,
    })
    expect(blocked.status).toBe(1)
    // git sends a hook's stdout to stderr.
    expect(blocked.stderr).toContain('settings.json:3:17  openai-project-key  sk-proj-****')
    expectMasked(blocked.stdout + blocked.stderr, [key])
    expect(spawnSync('git', ['rev-parse', 'HEAD'], { cwd: dir, env: ENV }).status).not.toBe(0) // nothing committed

    writeFileSync(
      join(dir, 'settings.json'),
      JSON.stringify({ openai: { api_key: '${OPENAI_API_KEY}' } }, null, 2),
    )
    git(dir, 'add', 'settings.json')
    const ok = spawnSync('git', [...gitArgs, 'commit', '-q', '-m', 'add settings'], {
      cwd: dir,
      encoding: 'utf8',
      env: ENV,
      timeout: 30_000,
    })
    expect(ok.status).toBe(0)
    expect(git(dir, 'log', '--oneline')).toContain('add settings')
  }, 120_000)
})
