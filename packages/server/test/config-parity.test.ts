import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { main } from '@gatehouse/server'
import { ensureBuilt, runCli, startCli } from './cli-helpers'

/**
 * `gatehouse config check` and `gatehouse` itself refuse the same configs, each error naming the
 * YAML key the operator wrote (not a package's option name), and accept the same good ones.
 */

let dir: string
beforeAll(() => {
  ensureBuilt()
  dir = mkdtempSync(join(tmpdir(), 'gh-parity-'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const base = 'metrics: { enabled: false }\n'

/**
 * `gatehouse config check --config F` and `gatehouse --config F`, run in this process through the
 * CLI's own entry point (main): the same code as the binary without a process start per row.
 */
async function checkAndStart(yaml: string): Promise<{ check: Run; start: Run }> {
  const file = join(dir, `bad-${randomBytes(4).toString('hex')}.yaml`)
  writeFileSync(file, yaml.includes('metrics:') ? `${yaml}\n` : `${yaml}\n${base}`)
  const run = async (argv: string[]): Promise<Run> => {
    let stdout = ''
    let stderr = ''
    const code = await main(argv, { out: (s) => void (stdout += s), err: (s) => void (stderr += s) }, { GATEHOUSE_PORT: '0' })
    return { code, stdout, stderr }
  }
  return { check: await run(['config', 'check', '--config', file]), start: await run(['--config', file]) }
}

interface Run {
  code: number | null | undefined
  stdout: string
  stderr: string
}

/** [what, the YAML, the line each must print] */
const BAD: Array<[string, string, RegExp]> = [
  ['an allowlist CIDR out of range', 'server: { security: { ip_allowlist: { enabled: true, allowed_ips: ["10.0.0.0/33"] } } }', /^ {2}server\.security\.ip_allowlist\.allowed_ips\.0: is not a valid CIDR \("10\.0\.0\.0\/33"\)$/m],
  ['an everything-denylist beside an allowlist', 'server: { security: { ip_allowlist: { enabled: true, allowed_ips: ["10.0.0.0/8"] }, ip_denylist: { enabled: true, denied_ips: ["0.0.0.0/0"] } } }', /^ {2}server\.security\.ip_denylist\.denied_ips\.0 \("0\.0\.0\.0\/0"\) denies every IPv4 address/m],
  ['an encryption key that is not 32 bytes', `auth: { encryption: { key: "${randomBytes(5).toString('hex')}" } }`, /^ {2}auth\.encryption\.key: must be 32 bytes, .*the value is not shown\)$/m],
  ['a previous encryption key that is not 32 bytes', `auth: { encryption: { previous_keys: ["${randomBytes(4).toString('hex')}"] } }`, /^ {2}auth\.encryption\.previous_keys\.0: must be 32 bytes/m],
  ['a TLS certificate file that does not exist', 'server: { tls: { enabled: true, cert_file: missing-cert.pem, key_file: missing-key.pem } }', /^ {2}server\.tls\.cert_file: no such file "missing-cert\.pem"/m],
  ['a Strict-Transport-Security without max-age', 'server: { security: { headers: { strict_transport_security: "includeSubDomains" } } }', /^ {2}server\.security\.headers\.strict_transport_security: /m],
  ['a body limit that is not a size', 'server: { body_limit: "10xb" }', /^ {2}server\.body_limit: must be a size/m],
  ['a choices bound below 1', 'server: { max_choices: 0 }', /^ {2}server\.max_choices: must be >= 1/m],
  ['a max_tokens below 1', 'providers: { openai: { max_tokens: 0 } }', /^ {2}providers\.openai\.max_tokens: must be >= 1/m],
  ['a JWT algorithm that is not asymmetric', 'auth: { jwt: { issuer: "https://login.example.com", audience: gatehouse, algorithms: [HS256] } }', /^ {2}auth\.jwt\.algorithms: "HS256" is not an asymmetric signature algorithm/m],
  ['an audit key that is too short', 'logging: { audit: { key: "short" } }', /^ {2}logging\.audit\.key: is too short \(5 bytes\)/m],
  ['a database URL that may fall back to plaintext', 'storage: { enabled: true, url: "postgresql://gatehouse@127.0.0.1:5432/gh?sslmode=prefer" }', /^ {2}storage\.url: sslmode=prefer may fall back to an unencrypted connection/m],
  ['a trust-all proxy CIDR', 'server: { trust_proxy: ["10.0.0.1", "0.0.0.0/0"] }', /^ {2}server\.trust_proxy\.1: "0\.0\.0\.0\/0" trusts every address/m],
  ['a trust-all IPv6 proxy CIDR', 'server: { trust_proxy: "::/0" }', /^ {2}server\.trust_proxy: "::\/0" trusts every address/m],
  ['a proxy entry that is no address', 'server: { trust_proxy: [proxy.internal] }', /^ {2}server\.trust_proxy\.0: "proxy\.internal" is not an address, a CIDR/m],
  ['trust_proxy true', 'server: { trust_proxy: true }', /^ {2}server\.trust_proxy: true trusts every hop/m],
  ['a port out of range', 'server: { port: 70000 }', /^ {2}server\.port: must be <= 65535/m],
  ['a timeout that is not a duration', 'server: { timeouts: { connect: soon } }', /^ {2}server\.timeouts\.connect: must be a duration/m],
  // config check once accepted this and start refused it, naming the proxy's option (timeouts.firstByte).
  ['an upstream timeout of 0', 'server: { timeouts: { first_byte: 0 } }', /^ {2}server\.timeouts\.first_byte: must be a positive duration \(got 0\)$/m],
  // Accepted by config check, refused at start by audit-log until the YAML took these from its schema.
  ['a checkpoint log id with a space (audit-log bound)', 'logging: { audit: { checkpoints: { enabled: true, log_id: "a b" } } }', /^ {2}logging\.audit\.checkpoints\.log_id: must match pattern/m],
  ['a sink name over 200 characters (audit-log bound)', `logging: { audit: { sinks: [{ type: syslog, host: logs.example.net, name: "${'n'.repeat(201)}" }] } }`, /^ {2}logging\.audit\.sinks\.0\.name: must NOT have more than 200 characters/m],
  ['an X-Frame-Options hsts does not know', 'server: { security: { headers: { frame_options: ALLOWALL } } }', /^ {2}server\.security\.headers\.frame_options: must match pattern/m],
  ['a TLS version below 1.2', 'server: { tls: { min_version: "1.0" } }', /^ {2}server\.tls\.min_version: must be one of/m],
  ['a per-IP burst below 1', 'server: { security: { rate_limiting: { burst: 0 } } }', /^ {2}server\.security\.rate_limiting\.burst: must be >= 1/m],
  ['a key limit below 1', 'auth: { key_limits: { concurrency: 0 } }', /^ {2}auth\.key_limits\.concurrency: must be >= 1/m],
  ['an endpoint of another provider', 'providers: { openai: { endpoints: [claude.messages] } }', /^ {2}providers\.openai\.endpoints\.0: must be one of/m],
  ['a quota of 0 tokens', 'providers: { claude: { quota: { limit: 0 } } }', /^ {2}providers\.claude\.quota\.limit: must be >= 1/m],
  ['an unknown store type', 'store: { type: etcd }', /^ {2}store\.type: must be one of/m],
  ['a Redis store without a URL', 'store: { type: redis }', /^ {2}store\.url: is required when store\.type is "redis"/m],
  ['a Redis store with the vault unencrypted', 'store: { type: redis, url: "redis://127.0.0.1:6379" }\nauth: { encryption: { enabled: false } }', /^ {2}auth\.encryption\.enabled: must be true when store\.type is "redis"/m],
  ['an OAuth refresh lease under a second', 'auth: { oauth: { refresh_lease: 500ms } }', /^ {2}auth\.oauth\.refresh_lease: must be at least 1s$/m],
  ['an OAuth refresh lease that is not a duration', 'auth: { oauth: { refresh_lease: forever } }', /^ {2}auth\.oauth\.refresh_lease: must be a duration/m],
  ['an unknown audit event type', 'logging: { audit: { events: [auth_failure, everything] } }', /^ {2}logging\.audit\.events\.1: must be one of/m],
  ['a syslog sink without a host', 'logging: { audit: { sinks: [{ type: syslog }] } }', /^ {2}logging\.audit\.sinks\.0\.host: is required for a syslog sink/m],
  ['a metrics path without a slash', 'metrics: { enabled: false, path: metrics }', /^ {2}metrics\.path: must match pattern/m],
  ['an alert condition that does not parse', 'alerts: [{ name: a, condition: "auth_failures >", duration: 1m, action: block_ip }]', /^ {2}alerts\.0\.condition: /m],
  ['an alert window over 7 days', 'alerts: [{ name: a, condition: "auth_failures > 5", duration: 30d, action: block_ip }]', /^ {2}alerts\.0 \("a"\): duration must be between 1s and 7d/m],
  ['a webhook that is not http(s)', 'alerts: [{ name: a, condition: "auth_failures > 5", duration: 1m, action: notify_admin }]\nnotify: { webhook_url: "ftp://hooks.example.net/T000/B000" }', /^ {2}notify\.webhook_url: must be an http\(s\) URL \(the value is a secret and is not shown\)/m],
  ['a reserved fingerprint header', 'device_fingerprint: { enabled: true, header: Host }', /^ {2}device_fingerprint\.header: "Host" is reserved/m],
  ['an audit retention below 0 files', 'logging: { audit: { retention: { max_files: -1 } } }', /^ {2}logging\.audit\.retention\.max_files: must be >= 0/m],
  ['an audit rotation age that is not a duration', 'logging: { audit: { max_file_age: weekly } }', /^ {2}logging\.audit\.max_file_age: must be a duration/m],
  ['a secret rule id that does not exist', 'secret_detection: { rules: { github-tokn: block } }', /^ {2}secret_detection\.rules\.github-tokn: unknown key \(did you mean "github-token"\?\)/m],
  ['a secret action that does not exist', 'secret_detection: { providers: { openai: { default: redact } } }', /^ {2}secret_detection\.providers\.openai\.default: must be one of/m],
  ['an unknown rule in a key policy', 'secret_detection: { keys: { key_abc123: { rules: { bogus: block } } } }', /^ {2}secret_detection\.keys\.key_abc123\.rules\.bogus: unknown key/m],
  ['a rate-limit relay for a provider that sends no such headers', 'providers: { gemini: { relay_rate_limit_headers: true } }', /^ {2}providers\.gemini\.relay_rate_limit_headers: unknown key/m],
  ['a rate-limit relay that is not a boolean', 'providers: { claude: { relay_rate_limit_headers: sometimes } }', /^ {2}providers\.claude\.relay_rate_limit_headers: must be boolean/m],
  ['a retention of 0 days', 'storage: { retention_days: 0 }', /^ {2}storage\.retention_days: must be >= 1/m],
  // Bounds the YAML takes from the packages' own option schemas.
  ['a metrics path with a space (metrics package bound)', 'metrics: { enabled: true, port: 0, path: "/me trics" }', /^ {2}metrics\.path: must match pattern/m],
  ['an alert block ttl that is not a duration', 'alerts: [{ name: a, condition: "auth_failures > 1", duration: 1m, action: block_ip, ttl: soon }]', /^ {2}alerts\.0\.ttl: must be a duration/m],
  ['an alert name over 200 characters (alerts package bound)', `alerts: [{ name: "${'n'.repeat(201)}", condition: "auth_failures > 1", duration: 1m, action: block_ip }]`, /^ {2}alerts\.0\.name: must NOT have more than 200 characters/m],
]

/** Values the operator wrote that no message may echo. */
// A provider key pasted into a value the error quotes back (core's masker takes it out).
const pasted = `sk-proj-${randomBytes(36).toString('base64url')}`
const SECRETS_IN_BAD = [
  ['a provider key pasted as a cipher suite', `server: { tls: { cipher_suites: ["${pasted}"] } }`, /^ {2}server\.tls\.cipher_suites\.0: unknown cipher suite /m, pasted],
  ['a base_url with a password in it', 'providers: { openai: { base_url: "https://gateway:s3cr3t-pa55word@api.openai.com/v1" } }', /^ {2}providers\.openai\.base_url: must match pattern .*\(got "https:\/\/\*\*\*\*@api\.openai\.com\/v1"\)$/m, 's3cr3t-pa55word'],
] as const satisfies ReadonlyArray<readonly [string, string, RegExp, string]>

describe('config check and start agree', () => {
  it.each(BAD)('both refuse %s, naming the YAML key', async (_what, yaml, line) => {
    const { check, start } = await checkAndStart(yaml)
    for (const run of [check, start]) {
      expect(run.code).toBe(1)
      expect(run.stderr).toMatch(line)
      // Never a camelCase option path the operator did not write.
      expect(run.stderr).not.toMatch(/\b(allowlist\.allowedIps|denylist\.deniedIps|encryption\.previousKeys|strictTransportSecurity|bodyLimit|maxChoices|webhookUrl|retentionDays|aggregateInterval|firstByte)\b/)
    }
    expect(start.stdout).not.toContain('gatehouse listening')
  })

  it.each(BAD.slice(0, 3))('the gatehouse binary itself refuses %s the same way', async (_what, yaml, line) => {
    const file = `bad-${randomBytes(4).toString('hex')}.yaml`
    writeFileSync(join(dir, file), `${yaml}\n${base}`)
    const [check, start] = await Promise.all([runCli(['config', 'check', '--config', file], { cwd: dir }), runCli(['--config', file], { cwd: dir, env: { GATEHOUSE_PORT: '0' } })])
    for (const run of [check, start]) {
      expect(run.code).toBe(1)
      expect(run.stderr).toMatch(line)
    }
    expect(start.stdout).not.toContain('gatehouse listening')
  })

  it.each(SECRETS_IN_BAD)('both refuse %s without echoing the secret', async (_what, yaml, line, secret) => {
    const { check, start } = await checkAndStart(yaml)
    for (const run of [check, start]) {
      expect(run.code).toBe(1)
      expect(run.stderr).toMatch(line)
      expect(run.stdout + run.stderr).not.toContain(secret)
    }
  })

  it('config check accepts a hop count for trust_proxy, as a number or from the environment, without turning it into true', async () => {
    for (const [yaml, env] of [['server: { port: 0, trust_proxy: 1 }', {}], ['server: { port: 0, trust_proxy: "${HOPS}" }', { HOPS: '2' }]] as const) {
      writeFileSync(join(dir, 'hops.yaml'), `${yaml}\n${base}`)
      const check = await runCli(['config', 'check', '--config', 'hops.yaml'], { cwd: dir, env })
      expect(check.stderr).toBe('')
      expect(check.code).toBe(0)
    }
  })

  it('both accept a good config', async () => {
    writeFileSync(join(dir, 'good.yaml'), `server: { port: 0, trust_proxy: 1, security: { ip_allowlist: { enabled: true, allowed_ips: ["127.0.0.1/32", "10.0.0.0/8"] } } }\n${base}`)
    const check = await runCli(['config', 'check', '--config', 'good.yaml'], { cwd: dir })
    expect(check.stdout).toContain('configuration OK')
    expect(check.code).toBe(0)
    const started = await startCli(['--config', 'good.yaml'], { cwd: dir })
    started.child.kill('SIGTERM')
    // SIGTERM the moment it says it listens: the graceful stop, exit 0 (the handlers come first).
    expect(await started.exited).toBe(0)
  })
})
