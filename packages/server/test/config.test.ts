import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadConfig } from '@gatehouse/server'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'gh-config-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

const write = (text: string): string => {
  const file = join(dir, 'config.yaml')
  writeFileSync(file, text)
  return file
}

const errorsOf = (fn: () => unknown): string[] => {
  try {
    fn()
  } catch (e) {
    if (e instanceof ConfigError) return e.errors
    throw e
  }
  throw new Error('expected a ConfigError')
}

describe('loadConfig', () => {
  it('runs the embedded default with no file: loopback, 8317, client auth on', () => {
    const { config, source } = loadConfig({ env: {}, cwd: dir })
    expect(source).toBe('embedded default')
    expect(config.server.host).toBe('127.0.0.1')
    expect(config.server.port).toBe(8317)
    expect(config.auth.client_auth.enabled).toBe(true)
    expect(config.logging.audit.file).toBe('./logs/audit.log')
    expect(config.metrics).toMatchObject({ host: '127.0.0.1', port: 9090 })
    expect(config.auth.dir).toBe('./auths')
  })

  it('names every bad key by its path', () => {
    const file = write(`
server:
  port: 99999
  tls: { min_version: "1.1" }
  timeouts: { idle: "10 parsecs" }
  secruity: {}
logging:
  level: loud
providers:
  claude: { base_url: "not a url" }
`)
    const errors = errorsOf(() => loadConfig({ file, env: {}, cwd: dir }))
    expect(errors).toEqual(
      expect.arrayContaining([
        'server.port: must be <= 65535 (got 99999)',
        'server.tls.min_version: must be one of "1.2", "1.3" (got "1.1")',
        'server.timeouts.idle: must be a duration such as "10s", "5m" or "250ms" (got "10 parsecs")',
        'server.secruity: unknown key (did you mean "security"?)',
        'logging.level: must be one of "error", "warn", "info", "debug" (got "loud")',
        expect.stringMatching(/^providers\.claude\.base_url: must match pattern/),
      ]),
    )
    expect(errors).toHaveLength(6)
  })

  it('interpolates ${ENV} and reads .env, with the environment winning', () => {
    writeFileSync(join(dir, '.env'), 'GH_TEST_PORT=9001\nGH_TEST_HOST=0.0.0.0\n')
    const file = write('server:\n  port: ${GH_TEST_PORT}\n  host: ${GH_TEST_HOST}\n  message: "${GH_MISSING:-fallback}"\n')
    const { config } = loadConfig({ file, env: { GH_TEST_HOST: '127.0.0.2' }, cwd: dir })
    expect(config.server.port).toBe(9001)
    expect(config.server.host).toBe('127.0.0.2')
    expect(config.server.message).toBe('fallback')
  })

  it('warns about unset variables and keeps the default', () => {
    const file = write('auth:\n  encryption: { key: "${GH_UNSET_KEY}" }\n')
    const { config, warnings } = loadConfig({ file, env: {}, cwd: dir })
    expect(warnings).toContain('auth.encryption.key: ${GH_UNSET_KEY} is not set')
    expect(config.auth.encryption.key).toBeUndefined()
  })

  it('never quotes a secret value in an error', () => {
    const file = write('management:\n  secret_key: 12345\n  allow_remote: "perhaps"\nproviders:\n  openai: { api_key: [1] }\n')
    const errors = errorsOf(() => loadConfig({ file, env: {}, cwd: dir }))
    expect(errors.join('\n')).toContain('management.allow_remote')
    expect(errors.join('\n')).toContain('providers.openai.api_key: must be string')
    expect(errors.join('\n')).not.toContain('[1]')
  })

  it('refuses trust_proxy: true, pointing at a hop count or CIDRs', () => {
    const file = write('server:\n  trust_proxy: true\n')
    expect(errorsOf(() => loadConfig({ file, env: {}, cwd: dir }))[0]).toMatch(/^server\.trust_proxy: true trusts every hop.*hop count/)
  })

  it('accepts the bare-list form of ip_denylist', () => {
    const file = write('server:\n  security:\n    ip_denylist: ["10.0.0.0/8", "2001:db8::/32"]\n')
    expect(loadConfig({ file, env: {}, cwd: dir }).config.server.security.ip_denylist).toEqual({
      enabled: true,
      denied_ips: ['10.0.0.0/8', '2001:db8::/32'],
    })
  })

  it('requires cert files with TLS, a url with redis, and well-formed alert conditions', () => {
    const file = write('server:\n  tls: { enabled: true }\nstore: { type: redis }\nalerts:\n  - { name: x, condition: "auth_failures >> 1", duration: 5m, action: notify_admin }\n')
    expect(errorsOf(() => loadConfig({ file, env: {}, cwd: dir }))).toEqual([
      'server.tls.cert_file: is required when server.tls.enabled is true',
      'server.tls.key_file: is required when server.tls.enabled is true',
      'store.url: is required when store.type is "redis"',
      'alerts.0.condition: condition "auth_failures >> 1" must read "<metric> > <whole number>" (or >=), e.g. "auth_failures > 100"',
    ])
  })

  it('reports YAML syntax errors with their line', () => {
    const file = write('server:\n  port: [8317\n')
    expect(errorsOf(() => loadConfig({ file, env: {}, cwd: dir }))[0]).toMatch(/^YAML line \d+/)
  })

  it('lets ENABLE_CLIENT_AUTH=false turn client auth off and provider keys come from the environment', () => {
    const { config } = loadConfig({ env: { ENABLE_CLIENT_AUTH: 'false', ANTHROPIC_API_KEY: 'from-env-123456' }, cwd: dir })
    expect(config.auth.client_auth.enabled).toBe(false)
    expect(config.providers.claude?.api_key).toBe('from-env-123456')
  })

  it('lets GATEHOUSE_PORT and GATEHOUSE_METRICS_PORT override the ports (file or default), and names a bad one', () => {
    expect(loadConfig({ env: {}, cwd: dir }).config.metrics.port).toBe(9090)
    const file = write('metrics: { port: 9100 }\n')
    const { config } = loadConfig({ file, env: { GATEHOUSE_PORT: '0', GATEHOUSE_METRICS_PORT: '9464' }, cwd: dir })
    expect([config.server.port, config.metrics.port]).toEqual([0, 9464])
    expect(errorsOf(() => loadConfig({ env: { GATEHOUSE_METRICS_PORT: '90901' }, cwd: dir }))).toEqual(['GATEHOUSE_METRICS_PORT: must be a port number (got "90901")'])
  })

  it('serves only the providers a providers section lists', () => {
    const file = write('providers:\n  claude: { base_url: "http://127.0.0.1:9" }\n')
    const { config } = loadConfig({ file, env: {}, cwd: dir })
    expect(Object.keys(config.providers)).toEqual(['claude'])
    expect(config.providers.claude).toMatchObject({ base_url: 'http://127.0.0.1:9', max_tokens: 4096, enabled: true })
  })

  it('names a missing file', () => {
    expect(errorsOf(() => loadConfig({ file: join(dir, 'nope.yaml'), env: {}, cwd: dir }))[0]).toContain('ENOENT')
  })
})
