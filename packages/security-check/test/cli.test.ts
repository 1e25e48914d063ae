import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import Ajv04 from 'ajv-draft-04'
import addFormats from 'ajv-formats'
import { SECRET_RULE_IDS } from '../src'
import { CLI, FAKE_KEYS, PKG_DIR, ensureBuilt, expectMasked, runCli, tempDir } from './helpers'

/** The SARIF 2.1.0 schema as published (SchemaStore's sarif-2.1.0-rtm.5), shipped by @microsoft/jest-sarif. */
function sarifValidator(): (data: unknown) => { valid: boolean; errors: unknown } {
  const schemaPath = join(
    dirname(require.resolve('@microsoft/jest-sarif/package.json')),
    'lib',
    'schemas',
    'sarif-2.1.0-rtm.5.json',
  )
  const schema = JSON.parse(readFileSync(schemaPath, 'utf8')) as object
  // The schema is draft-04; one of its language-tag patterns is only valid without the u flag.
  const ajv = new Ajv04({ allErrors: true, strict: false, unicodeRegExp: false })
  addFormats(ajv)
  const validate = ajv.compile(schema)
  return (data) => ({ valid: validate(data) === true, errors: validate.errors })
}

describe('gatehouse-check command line (in-process main)', () => {
  let dir: string
  let cleanup: () => void
  const planted: string[] = []

  beforeAll(() => {
    ;({ dir, cleanup } = tempDir())
    mkdirSync(join(dir, 'leaky'))
    mkdirSync(join(dir, 'clean'))
    for (const id of [
      'anthropic-api-key',
      'openai-service-account-key',
      'aws-access-key-id',
      'slack-token',
    ]) {
      const key = FAKE_KEYS[id]!()
      planted.push(key)
      writeFileSync(join(dir, 'leaky', `${id}.txt`), `line one\nvalue: ${key}\n`)
    }
    writeFileSync(join(dir, 'clean', 'readme.md'), '# nothing here\nANTHROPIC_API_KEY=${ANTHROPIC_API_KEY}\n')
  })
  afterAll(() => cleanup())

  it.each<[string[], number, RegExp]>([
    [[], 2, /^Usage: gatehouse-check <command>/],
    [['frobnicate'], 2, /unknown command "frobnicate"/],
    [['secrets', '--bogus'], 2, /secrets: Unknown option '--bogus'/],
    [['secrets', '--format', 'xml'], 2, /--format must be text, json or sarif \(got "xml"\)/],
    [['secrets', '--max-size', 'huge'], 2, /--max-size must be a size/],
    [['secrets', 'no-such-path'], 2, /"no-such-path" does not exist/],
    [['all', '--audit-timeout', 'soon', '--no-audit'], 2, /--audit-timeout must be a duration/],
    [['install-hook', 'extra'], 2, /unexpected argument "extra"/],
  ])('gatehouse-check %j exits %i', async (argv, code, pattern) => {
    const r = await runCli(argv, { cwd: dir })
    expect(r.code).toBe(code)
    expect(r.stderr).toMatch(pattern)
    expect(r.stdout).toBe('')
  })

  it('prints help and the version with exit 0', async () => {
    const help = await runCli(['--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('Exit codes: 0 clean, 1 findings, 2 usage error.')
    const sub = await runCli(['secrets', '--help'])
    expect(sub.code).toBe(0)
    const version = await runCli(['--version'])
    expect(version.stdout).toBe(
      `${(JSON.parse(readFileSync(join(PKG_DIR, 'package.json'), 'utf8')) as { version: string }).version}\n`,
    )
  })

  it('exits 0 on a clean tree and 1 with findings, every finding masked', async () => {
    const clean = await runCli(['secrets', 'clean'], { cwd: dir })
    expect(clean).toEqual({
      code: 0,
      stdout: expect.stringMatching(/^gatehouse-check secrets: 0 findings in 1 file scanned/),
      stderr: '',
    })
    const leaky = await runCli(['secrets', 'leaky'], { cwd: dir })
    expect(leaky.code).toBe(1)
    expect(leaky.stdout).toContain(
      'leaky/anthropic-api-key.txt:2:8  anthropic-api-key  sk-ant-****  (Anthropic API key)',
    )
    expect(leaky.stdout).toContain('gatehouse-check secrets: 4 findings in 4 files scanned')
    expectMasked(leaky.stdout + leaky.stderr, planted)
  })

  it('prints {"findings":[{file,line,column,rule,match}]} with --format json, the summary on stderr', async () => {
    const r = await runCli(['secrets', 'leaky', '--format', 'json'], { cwd: dir })
    expect(r.code).toBe(1)
    const parsed = JSON.parse(r.stdout) as { findings: Array<Record<string, unknown>> }
    expect(Object.keys(parsed)).toEqual(['findings'])
    expect(parsed.findings).toHaveLength(4)
    for (const f of parsed.findings)
      expect(Object.keys(f)).toEqual(['file', 'line', 'column', 'rule', 'match'])
    expect(parsed.findings).toContainEqual({
      file: 'leaky/aws-access-key-id.txt',
      line: 2,
      column: 8,
      rule: 'aws-access-key-id',
      match: 'AKIA****',
    })
    expect(r.stderr).toMatch(/^gatehouse-check secrets: 4 findings/)
    expectMasked(r.stdout + r.stderr, planted)
    const none = await runCli(['secrets', 'clean', '--format', 'json'], { cwd: dir })
    expect(none.code).toBe(0)
    expect(JSON.parse(none.stdout)).toEqual({ findings: [] })
  })

  it('prints SARIF 2.1.0 that the official schema accepts, with every rule and masked results', async () => {
    const validate = sarifValidator()
    const r = await runCli(['secrets', 'leaky', '--format', 'sarif'], { cwd: dir })
    expect(r.code).toBe(1)
    const log = JSON.parse(r.stdout) as {
      version: string
      runs: Array<{
        tool: { driver: { rules: Array<{ id: string }> } }
        results: Array<{
          ruleId: string
          ruleIndex: number
          message: { text: string }
          locations: Array<{
            physicalLocation: { artifactLocation: { uri: string }; region: { startLine: number } }
          }>
        }>
      }>
    }
    const { valid, errors } = validate(log)
    expect(errors).toBeNull()
    expect(valid).toBe(true)
    expect(log.version).toBe('2.1.0')
    const run = log.runs[0]!
    expect(run.tool.driver.rules.map((x) => x.id)).toEqual([...SECRET_RULE_IDS])
    expect(run.results).toHaveLength(4)
    for (const res of run.results) {
      expect(run.tool.driver.rules[res.ruleIndex]!.id).toBe(res.ruleId)
      expect(res.locations[0]!.physicalLocation.region.startLine).toBe(2)
      expect(res.locations[0]!.physicalLocation.artifactLocation.uri).toMatch(/^leaky\/[a-z-]+\.txt$/)
      expect(res.message.text).toContain('****')
    }
    expectMasked(r.stdout + r.stderr, planted)
    // An empty run is valid too.
    const none = await runCli(['secrets', 'clean', '--format', 'sarif'], { cwd: dir })
    expect(validate(JSON.parse(none.stdout)).valid).toBe(true)
    // And the validator really rejects a broken log.
    expect(
      validate({
        version: '2.1.0',
        runs: [{ tool: { driver: { name: 'x' } }, results: [{ message: { text: 'x' }, level: 'fatal' }] }],
      }).valid,
    ).toBe(false)
  })
})

describe('gatehouse-check as a spawned process (dist/cli.js)', () => {
  let dir: string
  let cleanup: () => void
  let key: string

  beforeAll(() => {
    ensureBuilt()
    ;({ dir, cleanup } = tempDir())
    key = FAKE_KEYS['gatehouse-client-key']!()
    writeFileSync(join(dir, 'client.env'), `GATEHOUSE_KEY=${key}\n`)
    mkdirSync(join(dir, 'empty'))
  }, 120_000)
  afterAll(() => cleanup())

  const run = (...args: string[]): { status: number | null; stdout: string; stderr: string } => {
    const r = spawnSync(process.execPath, [CLI, ...args], { cwd: dir, encoding: 'utf8', timeout: 30_000 })
    return { status: r.status, stdout: r.stdout, stderr: r.stderr }
  }

  it('exits 0 clean, 1 with findings, 2 on a usage error', () => {
    expect(run('secrets', 'empty').status).toBe(0)
    const leaky = run('secrets')
    expect(leaky.status).toBe(1)
    expect(leaky.stdout).toContain('client.env:1:15  gatehouse-client-key  gate_live_****')
    expectMasked(leaky.stdout + leaky.stderr, [key])
    const usage = run('secrets', '--format')
    expect(usage.status).toBe(2)
    expect(usage.stderr).toContain("Option '--format <value>' argument missing")
    expect(run().status).toBe(2)
    expect(run('permissions', 'empty').status).toBe(1) // a fresh temp directory is 0755, not 0700
  })

  it('exits the same way through the command npm links (bin/ shim and node_modules/.bin)', () => {
    // The shim once loaded dist/cli.js without running it: every check "passed" with no output.
    const linked = join(PKG_DIR, '..', '..', 'node_modules', '.bin', 'gatehouse-check')
    for (const command of [[process.execPath, join(PKG_DIR, 'bin', 'gatehouse-check.js')], [linked]]) {
      const exec = (...args: string[]) => spawnSync(command[0]!, [...command.slice(1), ...args], { cwd: dir, encoding: 'utf8', timeout: 30_000 })
      expect(exec('secrets', 'empty').status).toBe(0)
      const leaky = exec('secrets')
      expect(leaky.status).toBe(1)
      expect(leaky.stdout).toContain('gatehouse-client-key')
      expectMasked(leaky.stdout + leaky.stderr, [key])
      const missing = exec('permissions', join(dir, 'no-such-dir'))
      expect(missing.status).toBe(2)
      expect(missing.stderr).toContain('does not exist')
    }
  })

  it('exits 2 with GH_SC_GIT_FAILED wording when git cannot be run', () => {
    const r = spawnSync(process.execPath, [CLI, 'secrets', '--staged'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 30_000,
      env: { PATH: join(dir, 'no-bin') },
    })
    expect(r.status).toBe(2)
    expect(r.stderr).toBe('gatehouse-check: git is not installed or not on PATH\n')
  })

  it('writes complete SARIF to a pipe', () => {
    const r = run('secrets', '--format', 'sarif')
    expect(r.status).toBe(1)
    expect((JSON.parse(r.stdout) as { runs: Array<{ results: unknown[] }> }).runs[0]!.results).toHaveLength(1)
  })
})
