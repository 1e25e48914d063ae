import { chmodSync, mkdirSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { generateCertificate } from '@gatehouse/testing'
import { runAll, SecurityCheckErrorCodes } from '../src'
import { interpretAudit } from '../src/audit'
import { FAKE_KEYS, expectMasked, runCli, tempDir, tempDirPerTest } from './helpers'

/** A project that passes every check: 0700/0600 auths, no secrets, a fresh certificate and key. */
function cleanProject(dir: string, withTls = true): void {
  mkdirSync(join(dir, 'auths'), { mode: 0o700 })
  chmodSync(join(dir, 'auths'), 0o700)
  writeFileSync(join(dir, 'auths', 'claude.json'), '{"type":"api_key","token":"enc:v1:..."}', { mode: 0o600 })
  writeFileSync(join(dir, 'config.yaml'), 'auth:\n  encryption:\n    key: "${GATEHOUSE_ENCRYPTION_KEY}"\n')
  if (withTls) {
    const { cert, key } = generateCertificate({ days: 90 })
    mkdirSync(join(dir, 'tls'))
    writeFileSync(join(dir, 'tls', 'tls.crt'), cert, { mode: 0o644 })
    writeFileSync(join(dir, 'tls', 'tls.key'), key, { mode: 0o600 })
    chmodSync(join(dir, 'tls', 'tls.key'), 0o600)
  }
  // The TLS key is a private key in the tree on purpose: the project keeps it out of git.
  writeFileSync(join(dir, '.gitignore'), 'tls/\n')
}

/** A package with one production dependency, locked, for npm audit. */
function npmProject(dir: string): void {
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'app', version: '1.0.0', dependencies: { 'gh-audit-fixture': '1.0.0' } }),
  )
  writeFileSync(
    join(dir, 'package-lock.json'),
    JSON.stringify({
      name: 'app',
      version: '1.0.0',
      lockfileVersion: 3,
      requires: true,
      packages: {
        '': { name: 'app', version: '1.0.0', dependencies: { 'gh-audit-fixture': '1.0.0' } },
        'node_modules/gh-audit-fixture': { version: '1.0.0' },
      },
    }),
  )
}

const caches: Array<() => void> = []
afterAll(() => caches.forEach((c) => c()))

/** An environment that points npm at `registry`, with an empty cache, and makes it give up at once. */
function npmEnv(registry: string): NodeJS.ProcessEnv {
  const cache = tempDir('gh-sc-npm-cache-')
  caches.push(cache.cleanup)
  return {
    ...process.env,
    npm_config_registry: registry,
    npm_config_cache: cache.dir,
    npm_config_fetch_retries: '0',
    npm_config_fetch_timeout: '10000',
  }
}

describe('gatehouse-check all', () => {
  let dir: string
  const tmp = tempDirPerTest()
  beforeEach(() => {
    dir = tmp()
  })

  it('passes a clean project with one summary and exit 0 (TLS found at tls/tls.crt)', async () => {
    cleanProject(dir)
    const r = await runCli(['all', '--no-audit'], { cwd: dir })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/permissions +ok +auths: 1 file, 1 directory/)
    expect(r.stdout).toMatch(/secrets +ok +0 findings in \d+ files/)
    expect(r.stdout).toMatch(/tls +ok +tls\/tls\.crt: \d+ days left, key matches/)
    expect(r.stdout).toMatch(/npm audit +skipped +skipped \(--no-audit\)/)
    expect(r.stdout.trimEnd().split('\n').pop()).toBe('result: ok')
  }, 30_000)

  it('reports every kind of problem at once, masked, with exit 1', async () => {
    cleanProject(dir, false)
    chmodSync(join(dir, 'auths', 'claude.json'), 0o644)
    const key = FAKE_KEYS['anthropic-oauth-token']!()
    writeFileSync(join(dir, 'notes.md'), `token: ${key}\n`)
    const { cert } = generateCertificate({ days: 3 })
    const other = generateCertificate({ days: 90, keySize: 1024 })
    mkdirSync(join(dir, 'certs'))
    writeFileSync(join(dir, 'certs', 'server.crt'), cert)
    writeFileSync(join(dir, 'certs', 'server.key'), other.key, { mode: 0o600 })
    chmodSync(join(dir, 'certs', 'server.key'), 0o600)
    writeFileSync(join(dir, '.gitignore'), 'certs/\n')
    const r = await runCli(['all', '--no-audit', '--cert', 'certs/server.crt', '--key', 'certs/server.key'], {
      cwd: dir,
    })
    expect(r.code).toBe(1)
    expect(r.stdout).toContain('permissions: auths/claude.json: file mode 0644, expected 0600')
    expect(r.stdout).toContain('notes.md:1:8  anthropic-oauth-token  sk-ant-****')
    expect(r.stdout).toMatch(/tls: certs\/server\.crt: certificate expires in 2 days/)
    expect(r.stdout).toContain('tls: certs/server.key is not the private key of certs/server.crt')
    expect(r.stdout).toMatch(/permissions +FINDINGS/)
    expect(r.stdout).toMatch(/secrets +FINDINGS/)
    expect(r.stdout).toMatch(/tls +FINDINGS/)
    expect(r.stdout).toContain('result: 3 checks with findings')
    expectMasked(r.stdout + r.stderr, [key])
  }, 30_000)

  it('fixes the auth directory with --fix', async () => {
    cleanProject(dir, false)
    chmodSync(join(dir, 'auths'), 0o755)
    const result = await runAll({ cwd: dir, audit: false, fix: true })
    expect(result.ok).toBe(true)
    expect(result.permissions.message).toBe('auths: 1 file, 1 directory, 1 fixed')
  })

  it('skips what is not there: no auths directory, no certificate', async () => {
    const result = await runAll({ cwd: dir, audit: false })
    expect(result.ok).toBe(true)
    expect(result.permissions).toEqual({ status: 'skipped', message: 'auths does not exist' })
    expect(result.tls).toEqual({ status: 'skipped', message: 'no --cert and no tls/tls.crt' })
  })

  it.each<[string[], RegExp]>([
    [['all', '--no-audit', '--auth-dir', 'missing'], /auth directory "missing" does not exist/],
    [['all', '--no-audit', '--key', 'server.key'], /a TLS key was given without a certificate/],
    [['all', '--no-audit', '--min-days=-1'], /--min-days must be a number of days/],
    [['all', '--no-audit', '--baseline', 'nope.json'], /baseline "nope.json" does not exist/],
  ])('exits 2 for %j', async (argv, pattern) => {
    const r = await runCli(argv, { cwd: dir })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(pattern)
  })

  it('warns, and does not fail, when npm audit cannot reach the registry', async () => {
    cleanProject(dir, false)
    npmProject(dir)
    // A loopback port with nothing listening: the registry is unreachable.
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    const r = await runCli(['all'], { cwd: dir, env: npmEnv(`http://127.0.0.1:${port}/`) })
    expect(r.code).toBe(0)
    expect(r.stderr).toMatch(
      /^gatehouse-check all: warning: npm audit could not reach the registry \(.*ECONNREFUSED/,
    )
    expect(r.stdout).toMatch(/npm audit +WARNING +npm audit could not reach the registry/)
    expect(r.stdout).toContain('result: ok, 1 warning')
  }, 60_000)
})

describe('gatehouse-check all with an advisory service on loopback', () => {
  let dir: string
  const tmp = tempDirPerTest()
  beforeEach(() => {
    dir = tmp()
  })

  let server: Server
  let registry: string
  let severity = 'high'

  beforeAll(async () => {
    // Stands in for the registry's bulk-advisory and packument endpoints, so a real npm audit runs offline.
    server = createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        res.setHeader('content-type', 'application/json')
        if (req.method === 'POST' && req.url?.startsWith('/-/npm/v1/security/advisories/bulk')) {
          res.end(
            JSON.stringify({
              'gh-audit-fixture': [
                {
                  id: 1,
                  url: 'http://127.0.0.1/advisories/1',
                  title: 'Prototype pollution',
                  severity,
                  vulnerable_versions: '<2.0.0',
                  cwe: [],
                  cvss: { score: 7.5, vectorString: null },
                },
              ],
            }),
          )
          return
        }
        if (req.method === 'GET' && req.url === '/gh-audit-fixture') {
          const v = (version: string): object => ({
            name: 'gh-audit-fixture',
            version,
            dist: { tarball: `${registry}gh-audit-fixture-${version}.tgz` },
          })
          res.end(
            JSON.stringify({
              name: 'gh-audit-fixture',
              'dist-tags': { latest: '2.0.0' },
              versions: { '1.0.0': v('1.0.0'), '2.0.0': v('2.0.0') },
            }),
          )
          return
        }
        res.statusCode = 404
        res.end('{}')
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    registry = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  })
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })

  it('fails on a high advisory in a production dependency (exit 1)', async () => {
    severity = 'high'
    cleanProject(dir, false)
    npmProject(dir)
    const r = await runCli(['all'], { cwd: dir, env: npmEnv(registry) })
    expect(r.code).toBe(1)
    expect(r.stdout).toContain(
      'npm audit: 1 high or critical advisories in production dependencies (gh-audit-fixture: high)',
    )
    expect(r.stdout).toContain('result: 1 check with findings')
  }, 60_000)

  it('passes with only a moderate advisory (the audit level is high)', async () => {
    severity = 'moderate'
    cleanProject(dir, false)
    npmProject(dir)
    const result = await runAll({ cwd: dir, env: npmEnv(registry) })
    expect(result.audit).toMatchObject({
      status: 'ok',
      vulnerabilities: { moderate: 1, high: 0, critical: 0 },
    })
    expect(result.ok).toBe(true)
  }, 60_000)
})

describe('gatehouse-check all: other audit outcomes, bad options', () => {
  let dir: string
  const tmp = tempDirPerTest()
  beforeEach(() => {
    dir = tmp()
  })

  it('reads the other npm audit outcomes without crashing', () => {
    expect(
      interpretAudit(
        JSON.stringify({
          error: { code: 'ENOLOCK', summary: 'This command requires an existing lockfile.' },
        }),
        '',
      ),
    ).toMatchObject({
      status: 'warning',
      message: expect.stringContaining('needs a package-lock.json'),
    })
    expect(
      interpretAudit(
        '',
        'npm error code ENOTFOUND\nnpm error request to https://registry.example/ failed, reason: getaddrinfo ENOTFOUND',
      ),
    ).toMatchObject({
      status: 'warning',
      message: expect.stringContaining('could not reach the registry'),
    })
    // A registry (or proxy) that does not serve the audit endpoint.
    const refused = interpretAudit(
      JSON.stringify({ message: 'audit endpoint returned an error', error: { summary: '' } }),
      'npm warn audit 405 Method Not Allowed - POST http://127.0.0.1:9/-/npm/v1/security/advisories/bulk',
    )
    expect(refused).toMatchObject({
      status: 'warning',
      message: expect.stringContaining('the registry refused the audit request (405 Method Not Allowed'),
    })
    expect(interpretAudit('not json', 'something odd')).toMatchObject({
      status: 'warning',
      message: expect.stringContaining('npm audit failed'),
    })
    // A registry URL with a token in an error message is masked.
    const token = FAKE_KEYS['npm-token']!()
    const masked = interpretAudit(
      JSON.stringify({
        message: `request to https://user:${token}@registry.invalid/-/npm failed, reason: ECONNRESET`,
      }),
      '',
    )
    expectMasked(masked.message, [token])
  })

  it('rejects bad options to runAll with GH_SC_* codes', async () => {
    await expect(runAll({ cwd: dir, audit: 'no' as unknown as boolean })).rejects.toMatchObject({
      code: SecurityCheckErrorCodes.GH_SC_INVALID_OPTIONS,
    })
    await expect(runAll({ cwd: dir, audt: false } as never)).rejects.toMatchObject({
      code: SecurityCheckErrorCodes.GH_SC_UNKNOWN_OPTION,
      message: expect.stringContaining('did you mean "audit"'),
    })
  })
})
