import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { createAuditLogger } from '@gatehouse/audit-log'
import { openFileLimit } from '@gatehouse/server'
import { ensureBuilt, runCli } from './cli-helpers'

let dir: string
beforeAll(() => ensureBuilt())
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'gh-cliops-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

describe('gatehouse doctor', () => {
  it('reports every risky setting with a fix and exits 1 on a high one', async () => {
    writeFileSync(
      join(dir, 'risky.yaml'),
      `server:
  host: 0.0.0.0
  security: { rate_limiting: { enabled: false }, connections: { max: 2000000000 } }
auth: { client_auth: { enabled: false }, encryption: { enabled: false } }
management: { secret_key: changeme, allow_remote: true }
metrics: { host: 0.0.0.0 }
providers:
  openai: { base_url: "http://api.example.com", api_key: "your-key-here", relay_rate_limit_headers: true }
`,
    )
    const run = await runCli(['doctor', '--json', '--config', 'risky.yaml'], { cwd: dir })
    expect(run.code).toBe(1)
    const ids = (JSON.parse(run.stdout) as { findings: { id: string; severity: string; fix: string }[] }).findings.map((f) => f.id)
    expect(ids).toEqual(
      expect.arrayContaining([
        'client-auth-off',
        'management-key-weak',
        'management-remote-plaintext',
        'bind-plaintext',
        'metrics-exposed',
        'encryption-off',
        'provider-key-sample-openai',
        'provider-plaintext-openai',
        'rate-limits-off',
        'rate-limit-headers-relayed:openai',
        // A connection cap above the descriptors this process (and so the CLI's child) may open.
        ...(Number.isFinite(openFileLimit() ?? Infinity) ? ['connections-over-descriptors'] : []),
      ]),
    )
    expect(run.stdout).not.toContain('your-key-here')
    expect(run.stdout).not.toContain('changeme')
  })

  it('finds insecure modes in the auth directory', async () => {
    mkdirSync(join(dir, 'auths'), { mode: 0o700 })
    writeFileSync(join(dir, 'auths', 'loose.json'), '{}', { mode: 0o644 })
    chmodSync(join(dir, 'auths', 'loose.json'), 0o644)
    const run = await runCli(['doctor'], { cwd: dir, env: { GATEHOUSE_MANAGEMENT_KEY: randomBytes(32).toString('base64url') } })
    expect(run.stdout).toMatch(/HIGH\s+.*loose\.json/)
    expect(run.code).toBe(1)
  })

  it('passes a hardened config with exit 0', async () => {
    const run = await runCli(['doctor'], {
      cwd: dir,
      env: {
        GATEHOUSE_MANAGEMENT_KEY: randomBytes(32).toString('base64url'),
        GATEHOUSE_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
        GATEHOUSE_AUDIT_KEY: randomBytes(32).toString('hex'),
        SLACK_WEBHOOK_URL: 'https://hooks.example.com/services/x',
      },
    })
    expect(run.stdout).toContain('0 high')
    expect(run.code).toBe(0)
  })
})

describe('gatehouse audit verify', () => {
  it('says intact for an untouched log and names the first tampered line', async () => {
    const key = randomBytes(32).toString('hex')
    const file = join(dir, 'logs', 'audit.log')
    const audit = createAuditLogger({ file, key })
    for (let i = 0; i < 5; i++) audit.log({ timestamp: new Date().toISOString(), event_type: 'auth_failure', ip: `10.0.0.${i}`, result: 'invalid_key' })
    await audit.close()
    const env = { GATEHOUSE_AUDIT_KEY: key }
    writeFileSync(join(dir, 'c.yaml'), 'logging: { audit: { key: "${GATEHOUSE_AUDIT_KEY}" } }\n')
    const ok = await runCli(['audit', 'verify', file, '--config', 'c.yaml'], { cwd: dir, env })
    expect(ok.stdout).toContain('audit log intact: 5 lines')
    expect(ok.code).toBe(0)
    const lines = readFileSync(file, 'utf8').split('\n')
    lines[2] = lines[2]!.replace('10.0.0.2', '10.0.0.9')
    writeFileSync(file, lines.join('\n'))
    const bad = await runCli(['audit', 'verify', file, '--config', 'c.yaml'], { cwd: dir, env })
    expect(bad.stdout).toMatch(/audit log TAMPERED: .*audit\.log line 3/)
    expect(bad.code).toBe(1)
    expect((await runCli(['audit', 'verify', join(dir, 'nope.log'), '--config', 'c.yaml'], { cwd: dir, env })).code).toBe(2)
  })
})

describe('gatehouse vault', () => {
  it('migrates a plaintext credential file, then rotates every file to a new key', async () => {
    const oldKey = randomBytes(32).toString('hex')
    const newKey = randomBytes(32).toString('hex')
    const token = `sk-ant-api03-${randomBytes(40).toString('base64url')}`
    mkdirSync(join(dir, 'auths'), { mode: 0o700 })
    writeFileSync(join(dir, 'auths', 'claude.json'), JSON.stringify({ provider: 'claude', type: 'api_key', token }), { mode: 0o600 })
    const migrated = await runCli(['vault', 'migrate'], { cwd: dir, env: { GATEHOUSE_ENCRYPTION_KEY: oldKey } })
    expect(migrated.stdout).toContain('1 migrated')
    expect(migrated.code).toBe(0)
    const files = () => readdirSync(join(dir, 'auths')).filter((f) => f.startsWith('cred_'))
    expect(files()).toHaveLength(1)
    expect(readFileSync(join(dir, 'auths', files()[0]!), 'utf8')).not.toContain(token)
    writeFileSync(join(dir, 'rot.yaml'), 'auth: { encryption: { key: "${NEW_KEY}", previous_keys: ["${OLD_KEY}"] } }\n')
    const rotated = await runCli(['vault', 'rotate-key', '--config', 'rot.yaml'], { cwd: dir, env: { NEW_KEY: newKey, OLD_KEY: oldKey } })
    expect(rotated.stdout).toContain('1 re-encrypted')
    expect(rotated.code).toBe(0)
    const again = await runCli(['vault', 'rotate-key'], { cwd: dir, env: { GATEHOUSE_ENCRYPTION_KEY: newKey } })
    expect(again.stdout).toContain('0 re-encrypted under the current key, 1 already current')
    expect(migrated.stdout + migrated.stderr + rotated.stdout + rotated.stderr).not.toContain(token)
  })
})

describe('gatehouse keys scopes', () => {
  it('creates a key with --endpoints, lists its scope, and refuses empty or unknown scopes with exit 2', async () => {
    const created = await runCli(['keys', 'create', '--name', 'files', '--providers', 'openai', '--endpoints', 'openai.chat,openai.files.list'], { cwd: dir })
    expect(created.code).toBe(0)
    expect(created.stdout.trim()).toMatch(/^gate_live_/)
    const list = await runCli(['keys', 'list'], { cwd: dir })
    expect(list.stdout).toContain('providers=openai\tendpoints=openai.chat,openai.files.list')
    const json = JSON.parse((await runCli(['keys', 'list', '--json'], { cwd: dir })).stdout) as Array<{ endpoints?: string[] }>
    expect(json[0]!.endpoints).toEqual(['openai.chat', 'openai.files.list'])
    for (const [args, message] of [
      [['--providers', ','], 'providers must not be empty'],
      [['--endpoints', ''], 'endpoints must not be empty'],
      [['--endpoints', 'openai.chats'], 'did you mean "openai.chat"?'],
      [['--providers', 'claude', '--endpoints', 'openai.chat'], 'which providers does not include'],
    ] as const) {
      const r = await runCli(['keys', 'create', '--name', 'x', ...args], { cwd: dir })
      expect([args.join(' '), r.code]).toEqual([args.join(' '), 2])
      expect(r.stderr).toContain(message)
      expect(r.stdout).toBe('')
    }
    expect(JSON.parse((await runCli(['keys', 'list', '--json'], { cwd: dir })).stdout)).toHaveLength(1)
  }, 90_000)

  it('creates a key with its own limits and models (--rpm --tpm --monthly-tokens --concurrency --models), lists them, and refuses bad ones in the flags\' words', async () => {
    const created = await runCli(
      ['keys', 'create', '--name', 'limited', '--rpm', '60', '--tpm', '50000,openai=20000', '--monthly-tokens', '5000000', '--concurrency', '4', '--models', 'gpt-4o*,claude-*'],
      { cwd: dir },
    )
    expect(created.code).toBe(0)
    const json = JSON.parse((await runCli(['keys', 'list', '--json'], { cwd: dir })).stdout) as Array<{ name: string; limits?: unknown; models?: string[] }>
    const k = json.find((x) => x.name === 'limited')!
    expect(k.limits).toEqual({ requests_per_minute: 60, tokens_per_minute: 50000, monthly_tokens: 5000000, concurrency: 4, providers: { openai: { tokens_per_minute: 20000 } } })
    expect(k.models).toEqual(['gpt-4o*', 'claude-*'])
    const list = await runCli(['keys', 'list'], { cwd: dir })
    expect(list.stdout).toContain('models=gpt-4o*,claude-*\tlimits=rpm=60 tpm=50000 monthly-tokens=5000000 concurrency=4 openai.tpm=20000')
    for (const [args, message] of [
      [['--rpm', '0'], '--rpm: must be a whole number of at least 1 (got 0)'],
      [['--tpm', 'lots'], '--tpm: must be a whole number of at least 1 (got "lots")'],
      [['--concurrency', 'opena=2'], 'a limit for a provider: unknown provider "opena"'],
      [['--providers', 'claude', '--rpm', 'openai=5'], 'a limit for a provider (openai=…): the key may not call openai'],
      [['--models', ''], '--models must not be empty'],
    ] as const) {
      const r = await runCli(['keys', 'create', '--name', 'x', ...args], { cwd: dir })
      expect([args.join(' '), r.code]).toEqual([args.join(' '), 2])
      expect(r.stderr).toContain(message)
      expect(r.stdout).toBe('')
    }
  }, 90_000)
})
