import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { scanSecrets, writeSecretsBaseline, SecurityCheckErrorCodes } from '../src'
import { FAKE_KEYS, expectMasked, runCli, tempDir } from './helpers'

const write = (root: string, rel: string, content: string | Buffer): void => {
  mkdirSync(join(root, rel, '..'), { recursive: true })
  writeFileSync(join(root, rel), content)
}

describe('scanSecrets on a tree of real files', () => {
  let dir: string
  let cleanup: () => void
  const keys: Record<string, string> = {}

  beforeAll(() => {
    ;({ dir, cleanup } = tempDir())
    const k = (id: string): string => (keys[id] = FAKE_KEYS[id]!())
    write(
      dir,
      'config/settings.json',
      JSON.stringify({ providers: { claude: { api_key: k('anthropic-api-key') } } }, null, 2),
    )
    write(
      dir,
      'config/app.yaml',
      `server:\n  port: 8317\nproviders:\n  openai:\n    api_key: "${k('openai-project-key')}"\n`,
    )
    write(dir, '.env.production', `GATEHOUSE_PORT=8317\nGEMINI_API_KEY=${k('google-api-key')}\n`)
    write(dir, 'src/client.ts', `import x from 'y'\n\nexport const token = '${k('github-token')}'\n`)
    write(dir, 'docs/setup.md', `# Setup\n\n\`\`\`bash\nexport GROQ_API_KEY=${k('groq-api-key')}\n\`\`\`\n`)
    write(dir, 'Dockerfile', `FROM node:20\nENV NPM_TOKEN=${k('npm-token')}\nRUN npm ci\n`)
    write(dir, 'deploy/id_rsa', `${k('private-key')}\n`)
    write(dir, 'scripts/notify.sh', `#!/bin/sh\ncurl -X POST ${k('slack-webhook-url')} -d '{}'\n`)
    write(dir, 'src/keys.py', `GATEHOUSE = "${k('gatehouse-client-key')}"\n`)
    // Look-alikes that must stay silent.
    write(
      dir,
      'src/clean.ts',
      "const key = process.env.ANTHROPIC_API_KEY ?? ''\nconst masked = 'sk-ant-****'\n",
    )
    write(
      dir,
      'package-lock.json',
      JSON.stringify({
        packages: { 'node_modules/x': { integrity: `sha512-${randomBytes(64).toString('base64')}` } },
      }),
    )
  })
  afterAll(() => cleanup())

  it('finds each planted key in its file type, with file, line and column', async () => {
    const result = await scanSecrets({ cwd: dir })
    const got = result.findings.map((f) => [f.file, f.line, f.rule])
    expect(got).toEqual(
      expect.arrayContaining([
        ['config/settings.json', 4, 'anthropic-api-key'],
        ['config/app.yaml', 5, 'openai-project-key'],
        ['.env.production', 2, 'google-api-key'],
        ['src/client.ts', 3, 'github-token'],
        ['docs/setup.md', 4, 'groq-api-key'],
        ['Dockerfile', 2, 'npm-token'],
        ['deploy/id_rsa', 1, 'private-key'],
        ['scripts/notify.sh', 2, 'slack-webhook-url'],
        ['src/keys.py', 1, 'gatehouse-client-key'],
      ]),
    )
    expect(result.findings).toHaveLength(9)
    expect(result.ok).toBe(false)
    expect(result.files).toBe(11)
    expect(result.bytes).toBeGreaterThan(500)
    expectMasked(JSON.stringify(result), Object.values(keys))
  })

  it('scans only the named paths, and a named file', async () => {
    const result = await scanSecrets({ cwd: dir, paths: ['src', 'Dockerfile'] })
    expect(result.findings.map((f) => f.file).sort()).toEqual(['Dockerfile', 'src/client.ts', 'src/keys.py'])
    expect(result.files).toBe(4)
  })

  it('refuses a path that does not exist with GH_SC_PATH_NOT_FOUND', async () => {
    await expect(scanSecrets({ cwd: dir, paths: ['nope'] })).rejects.toMatchObject({
      code: SecurityCheckErrorCodes.GH_SC_PATH_NOT_FOUND,
    })
  })
})

describe('what scanSecrets skips', () => {
  let dir: string
  let cleanup: () => void
  beforeEach(() => ({ dir, cleanup } = tempDir()))
  afterEach(() => cleanup())

  it('skips .gitignore matches (nested files and negations), .git/ and .git/info/exclude, and counts them', async () => {
    const k = (): string => FAKE_KEYS['github-token']!()
    mkdirSync(join(dir, '.git', 'info'), { recursive: true })
    write(dir, '.git/config', `token = ${k()}\n`)
    write(dir, '.git/info/exclude', 'local-notes.txt\n')
    write(dir, '.gitignore', 'node_modules/\n*.log\n!keep.log\n')
    write(dir, 'node_modules/pkg/index.js', `module.exports = '${k()}'\n`)
    write(dir, 'debug.log', `${k()}\n`)
    write(dir, 'keep.log', `${k()}\n`)
    write(dir, 'local-notes.txt', `${k()}\n`)
    write(dir, 'sub/.gitignore', 'secret.txt\n')
    write(dir, 'sub/secret.txt', `${k()}\n`)
    write(dir, 'sub/other.txt', `${k()}\n`)
    const result = await scanSecrets({ cwd: dir })
    expect(result.findings.map((f) => f.file).sort()).toEqual(['keep.log', 'sub/other.txt'])
    expect(result.skipped.ignored).toBe(4) // node_modules/, debug.log, local-notes.txt, sub/secret.txt

    // A subdirectory scan still honours the ignore files above it.
    const sub = await scanSecrets({ cwd: join(dir, 'sub') })
    expect(sub.findings.map((f) => f.file)).toEqual(['other.txt'])

    // --no-gitignore (gitignore: false) reads everything but .git/.
    const all = await scanSecrets({ cwd: dir, gitignore: false })
    expect(all.findings).toHaveLength(6)
    expect(all.findings.some((f) => f.file.startsWith('.git/'))).toBe(false)
  })

  it('scans a directory named on purpose even when an ignore file above it ignores it', async () => {
    mkdirSync(join(dir, '.git'))
    write(dir, '.gitignore', 'node_modules/\n')
    write(dir, 'node_modules/pkg/index.js', `module.exports = '${FAKE_KEYS['npm-token']!()}'\n`)
    write(dir, 'node_modules/pkg/.gitignore', 'local.txt\n')
    write(dir, 'node_modules/pkg/local.txt', `${FAKE_KEYS['npm-token']!()}\n`)
    // The tree scan leaves it out, as git does.
    expect(await scanSecrets({ cwd: dir })).toMatchObject({ findings: [], skipped: { ignored: 1 } })
    // Named, it is read, and the ignore files inside it still apply; the same from a subdirectory.
    for (const [cwd, path, shown] of [
      [dir, 'node_modules', 'node_modules/pkg/index.js'],
      [join(dir, 'node_modules'), 'pkg', 'pkg/index.js'],
    ] as const) {
      const named = await scanSecrets({ cwd, paths: [path] })
      expect(named.findings.map((f) => f.file)).toEqual([shown])
      expect(named.skipped.ignored).toBe(1)
    }
  })

  it('skips paths matched by exclude patterns', async () => {
    write(dir, 'fixtures/a.txt', `${FAKE_KEYS['npm-token']!()}\n`)
    write(dir, 'src/a.txt', `${FAKE_KEYS['npm-token']!()}\n`)
    const result = await scanSecrets({ cwd: dir, exclude: ['fixtures/'] })
    expect(result.findings.map((f) => f.file)).toEqual(['src/a.txt'])
    expect(result.skipped.ignored).toBe(1)
  })

  it('skips binary files, files over the size limit and symlinks, and counts each', async () => {
    const key = FAKE_KEYS['anthropic-api-key']!()
    write(dir, 'image.png', Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0]), Buffer.from(key)]))
    write(dir, 'big.txt', `${'a'.repeat(2000)}\n${key}\n`)
    write(dir, 'small.txt', `${key}\n`)
    symlinkSync(join(dir, 'small.txt'), join(dir, 'link.txt'))
    const result = await scanSecrets({ cwd: dir, maxFileSize: '1kb' })
    expect(result.findings.map((f) => f.file)).toEqual(['small.txt'])
    expect(result.skipped).toMatchObject({ binary: 1, tooLarge: 1, symlink: 1 })
    const { stdout } = await runCli(['secrets', '--max-size', '1kb'], { cwd: dir })
    expect(stdout).toMatch(/skipped .*1 binary, 1 over --max-size \(not scanned: raise or drop --max-size\), 1 symlink/)
  })

  it('fails (exit 1, not ok) when a file over the size limit was not read, even with no finding', async () => {
    write(dir, 'big.txt', `${'a'.repeat(2000)}\n${FAKE_KEYS['npm-token']!()}\n`)
    write(dir, 'small.txt', 'nothing here\n')
    const limited = await scanSecrets({ cwd: dir, maxFileSize: '1kb' })
    expect(limited).toMatchObject({ ok: false, findings: [], skipped: { tooLarge: 1 } })
    expect((await runCli(['secrets', '--max-size', '1kb'], { cwd: dir })).code).toBe(1)
    // Under a limit that fits, the key is found.
    const full = await scanSecrets({ cwd: dir, maxFileSize: '1mb' })
    expect(full.findings.map((f) => [f.file, f.rule])).toEqual([['big.txt', 'npm-token']])
  })

  it('silences findings with an allow comment and counts them', async () => {
    const key = FAKE_KEYS['stripe-secret-key']!()
    write(dir, 'a.ts', `const k = '${key}' // gatehouse-check:allow fixture\n`)
    const result = await scanSecrets({ cwd: dir })
    expect(result.findings).toEqual([])
    expect(result.suppressed).toEqual({ inline: 1, baseline: 0 })
  })
})

describe('baselines', () => {
  let dir: string
  let cleanup: () => void
  beforeEach(() => ({ dir, cleanup } = tempDir()))
  afterEach(() => cleanup())

  it('writes a baseline without credentials, and reports only new findings against it', async () => {
    const old = FAKE_KEYS['openai-legacy-key']!()
    write(dir, 'legacy.js', `const k = "${old}"\n`)
    const first = await scanSecrets({ cwd: dir })
    writeSecretsBaseline(join(dir, '.gatehouse-baseline.json'), first.findings)
    const text = readFileSync(join(dir, '.gatehouse-baseline.json'), 'utf8')
    expectMasked(text, [old])
    expect(JSON.parse(text)).toMatchObject({
      tool: 'gatehouse-check',
      version: 1,
      findings: [{ file: 'legacy.js', rule: 'openai-legacy-key' }],
    })

    // The accepted finding moves down a line: still accepted. A new key is reported.
    const fresh = FAKE_KEYS['openai-legacy-key']!()
    write(dir, 'legacy.js', `// moved\nconst k = "${old}"\nconst j = "${fresh}"\n`)
    const second = await scanSecrets({ cwd: dir, baseline: '.gatehouse-baseline.json' })
    expect(second.findings.map((f) => f.line)).toEqual([3])
    expect(second.suppressed.baseline).toBe(1)
  })

  it('writes and uses a baseline through the CLI', async () => {
    write(dir, 'a.env', `TOKEN=${FAKE_KEYS['huggingface-token']!()}\n`)
    const w = await runCli(['secrets', '--write-baseline', 'baseline.json'], { cwd: dir })
    expect(w.code).toBe(0)
    expect(w.stdout).toContain('wrote 1 finding to baseline.json')
    const r = await runCli(['secrets', '--baseline', 'baseline.json'], { cwd: dir })
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('silenced 0 inline, 1 by baseline')
  })

  it.each<[string, string]>([
    ['missing', ''],
    ['not JSON', '{nope'],
    ['the wrong shape', JSON.stringify({ findings: [{ file: 'a' }] })],
  ])('refuses a %s baseline with GH_SC_BASELINE_INVALID (exit 2)', async (_name, content) => {
    if (content !== '') write(dir, 'b.json', content)
    await expect(scanSecrets({ cwd: dir, baseline: 'b.json' })).rejects.toMatchObject({
      code: SecurityCheckErrorCodes.GH_SC_BASELINE_INVALID,
    })
    const r = await runCli(['secrets', '--baseline', 'b.json'], { cwd: dir })
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('baseline "b.json"')
  })
})
