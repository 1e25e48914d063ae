import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
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
]

describe('config check and start agree', () => {
  it.each(BAD)('both refuse %s, naming the YAML key', async (_what, yaml, line) => {
    const file = `bad-${randomBytes(4).toString('hex')}.yaml`
    writeFileSync(join(dir, file), `${yaml}\n${base}`)
    const check = await runCli(['config', 'check', '--config', file], { cwd: dir })
    const start = await runCli(['--config', file], { cwd: dir, env: { GATEHOUSE_PORT: '0' } })
    for (const run of [check, start]) {
      expect(run.code).toBe(1)
      expect(run.stderr).toMatch(line)
      // Never a camelCase option path the operator did not write.
      expect(run.stderr).not.toMatch(/\b(allowlist\.allowedIps|denylist\.deniedIps|encryption\.previousKeys|strictTransportSecurity|bodyLimit|maxChoices)\b/)
    }
    expect(start.stdout).not.toContain('gatehouse listening')
  })

  it('both accept a good config', async () => {
    writeFileSync(join(dir, 'good.yaml'), `server: { port: 0, security: { ip_allowlist: { enabled: true, allowed_ips: ["127.0.0.1/32", "10.0.0.0/8"] } } }\n${base}`)
    const check = await runCli(['config', 'check', '--config', 'good.yaml'], { cwd: dir })
    expect(check.stdout).toContain('configuration OK')
    expect(check.code).toBe(0)
    const started = await startCli(['--config', 'good.yaml'], { cwd: dir })
    started.child.kill('SIGTERM')
    // SIGTERM the moment it says it listens: the graceful stop, exit 0 (the handlers come first).
    expect(await started.exited).toBe(0)
  })
})
