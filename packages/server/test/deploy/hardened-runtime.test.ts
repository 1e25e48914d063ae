/**
 * The container, as closely as this machine can run it without a container engine: the tree
 * scripts/stage-runtime.js stages for the image (the Dockerfile runs the same script) becomes the
 * root of a chroot in a private mount namespace, mounted the way docker-compose.yml mounts it:
 * read-only root, /config and /tls read-only, /auths and /logs writable and owned by 65534, /tmp a
 * noexec,nosuid tmpfs. The server runs there as 65534:65534 with no capabilities, no_new_privs and
 * (with python3-seccomp) under seccomp-profile.json, started with the image's ENTRYPOINT, CMD, ENV
 * and WORKDIR. Needs root (mount, chroot); the network is the host's loopback.
 */
import {
  chownSync,
  chmodSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import YAML from 'yaml'
import { MockUpstream, generateCertificate } from '@gatehouse/testing'
import {
  ensureBuiltAll,
  hasCommand,
  hasPythonSeccomp,
  isRoot,
  loadScript,
  parseDockerfile,
  readRepoFile,
  request,
  root,
  run,
  scriptsDir,
} from './deploy-helpers'

const NOBODY = 65534
const canRun =
  isRoot() &&
  process.execPath.startsWith('/usr/') &&
  hasCommand('unshare', ['--mount', 'true']) &&
  hasCommand('setpriv', ['--help'])
const withSeccomp = canRun && hasPythonSeccomp()
const why = !isRoot()
  ? 'needs root for mount namespaces and chroot'
  : !process.execPath.startsWith('/usr/')
    ? `node must live under /usr to be visible in the chroot (it is ${process.execPath})`
    : 'needs unshare and setpriv (util-linux)'
const describeSim = canRun ? describe : describe.skip
if (!canRun) console.warn(`hardened-runtime.test.ts skipped: ${why}`)

const SIM_SETUP = `
set -eu
R=$1; CFG=$2; TLS=$3; SIM=$4; shift 4
mount --bind "$R" "$R"
for d in usr etc proc dev tmp sim; do mkdir -p "$R/$d"; done
for l in bin lib lib64 sbin; do [ -e "$R/$l" ] || [ -L "$R/$l" ] || ln -s "usr/$l" "$R/$l"; done
mount --bind /usr "$R/usr"; mount -o remount,bind,ro "$R/usr"
mount --bind /etc "$R/etc"; mount -o remount,bind,ro "$R/etc"
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o noexec,nosuid,nodev,size=16m tmpfs "$R/tmp"
mount --bind "$SIM" "$R/sim"; mount -o remount,bind,ro "$R/sim"
mount --bind "$CFG" "$R/config"; mount -o remount,bind,ro "$R/config"
mount --bind "$TLS" "$R/tls"; mount -o remount,bind,ro "$R/tls"
mount --bind "$R/auths" "$R/auths"
mount --bind "$R/logs" "$R/logs"
mount -o remount,bind,ro "$R"
exec chroot "$R" "$@"
`

const dockerfile = parseDockerfile(readRepoFile('Dockerfile'))
const runtime = dockerfile.stages[1]!
const arg = (name: string) => runtime.instructions.find((i) => i.name === name)!.args
const imageEnv = Object.fromEntries([...arg('ENV').matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]))
/** The image's ENTRYPOINT with this machine's node in place of distroless's /nodejs/bin/node. */
const entrypoint = (JSON.parse(arg('ENTRYPOINT')) as string[]).map((a) =>
  a === '/nodejs/bin/node' ? '/usr/bin/node' : a,
)
const cmd = JSON.parse(arg('CMD')) as string[]
const healthcheck = (() => {
  const hc = arg('HEALTHCHECK')
  return (JSON.parse(hc.slice(hc.indexOf('CMD') + 3).trim()) as string[]).map((a) =>
    a === '/nodejs/bin/node' ? '/usr/bin/node' : a,
  )
})()

interface Sim {
  rootDir: string
  cfgDir: string
  tlsDir: string
  simDir: string
  port: number
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}

/** argv for `unshare` that runs `command` in the simulated container as 65534. */
function simArgs(
  sim: Sim,
  command: string[],
  opts: { seccomp: boolean; env?: Record<string, string> },
): string[] {
  const env = {
    PATH: '/usr/bin:/bin',
    HOME: '/nonexistent',
    ...imageEnv,
    // The sim shares the host's network: listen on loopback, on a port of our choosing.
    GATEHOUSE_HOST: '127.0.0.1',
    GATEHOUSE_PORT: String(sim.port),
    ...(opts.env ?? {}),
  }
  const wrapper = opts.seccomp
    ? ['/usr/bin/python3', '/sim/seccomp-exec.py', '/sim/seccomp-profile.json', '--']
    : []
  return [
    '--mount',
    '--fork',
    '--kill-child',
    '--',
    'sh',
    '-c',
    SIM_SETUP,
    'sim',
    sim.rootDir,
    sim.cfgDir,
    sim.tlsDir,
    sim.simDir,
    '/usr/bin/env',
    '-i',
    '-C',
    arg('WORKDIR'),
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    '/usr/bin/setpriv',
    `--reuid=${NOBODY}`,
    `--regid=${NOBODY}`,
    '--clear-groups',
    '--inh-caps=-all',
    '--bounding-set=-all',
    '--no-new-privs',
    '--',
    ...wrapper,
    ...command,
  ]
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name)
    return e.isDirectory() && !e.isSymbolicLink() ? [p, ...walk(p)] : [p]
  })
}

let sim: Sim
let upstream: MockUpstream
let serverCert: { cert: string; key: string }
let gateway: ChildProcess | undefined
let gatewayOut = ''
let gatewayExit: Promise<number | null>
let key = ''
let url = ''
const providerKey = `sk-ant-api03-${Math.random().toString(36).slice(2)}${'k'.repeat(30)}`

// The staging runs only where the simulation can (describeSim skips the tests elsewhere).
if (canRun) {
  beforeAll(async () => {
    ensureBuiltAll()
    const rootDir = mkdtempSync(join(tmpdir(), 'gh-image-'))
    chmodSync(rootDir, 0o755)
    const staged = await run(
      process.execPath,
      [join(scriptsDir, 'stage-runtime.js'), '--container', rootDir],
      { timeoutMs: 60_000 },
    )
    expect(staged.stderr).toBe('')
    expect(staged.code).toBe(0)
    // What COPY --chown=65534:65534 does for the writable volumes.
    for (const d of ['auths', 'logs']) chownSync(join(rootDir, d), NOBODY, NOBODY)

    upstream = await MockUpstream.start()
    const cfgDir = mkdtempSync(join(tmpdir(), 'gh-image-config-'))
    const tlsDir = mkdtempSync(join(tmpdir(), 'gh-image-tls-'))
    const simDir = mkdtempSync(join(tmpdir(), 'gh-image-sim-'))
    for (const d of [cfgDir, tlsDir, simDir]) chmodSync(d, 0o755)
    // An operator's config: the image's default, plus providers, TLS from /tls and metrics on loopback.
    const config = YAML.parse(readFileSync(join(rootDir, 'config', 'config.yaml'), 'utf8')) as Record<
      string,
      Record<string, unknown>
    >
    config.server!.tls = { ...(config.server!.tls as object), enabled: true }
    config.metrics = { enabled: true, host: '127.0.0.1', port: await freePort() }
    config.providers = { claude: { base_url: upstream.url, api_key: providerKey } }
    writeFileSync(join(cfgDir, 'config.yaml'), YAML.stringify(config), { mode: 0o644 })
    serverCert = generateCertificate({ commonName: 'localhost' })
    writeFileSync(join(tlsDir, 'server.crt'), serverCert.cert, { mode: 0o644 })
    writeFileSync(join(tlsDir, 'server.key'), serverCert.key, { mode: 0o600 })
    chownSync(join(tlsDir, 'server.key'), NOBODY, NOBODY)
    writeFileSync(join(simDir, 'seccomp-exec.py'), readFileSync(join(scriptsDir, 'seccomp-exec.py')), {
      mode: 0o644,
    })
    writeFileSync(join(simDir, 'seccomp-profile.json'), readFileSync(join(root, 'seccomp-profile.json')), {
      mode: 0o644,
    })
    sim = { rootDir, cfgDir, tlsDir, simDir, port: await freePort() }
  }, 90_000)

  afterAll(async () => {
    if (gateway && gateway.exitCode === null) gateway.kill('SIGKILL')
    await upstream?.close()
    if (sim)
      for (const d of [sim.rootDir, sim.cfgDir, sim.tlsDir, sim.simDir])
        rmSync(d, { recursive: true, force: true })
  })
}

describeSim('the image layout: what is staged, and the gateway run as 65534 on a read-only root', () => {
  it('stages the server and its production dependencies only', async () => {
    const { runtimeClosure } = loadScript(join(scriptsDir, 'stage-runtime.js')) as {
      runtimeClosure: (lock: unknown) => { external: string[]; workspaces: string[] }
    }
    const closure = runtimeClosure(JSON.parse(readRepoFile('package-lock.json')))
    expect(closure.workspaces).toContain('packages/server')
    expect(closure.workspaces).not.toContain('packages/testing')
    const staged = readdirSync(join(sim.rootDir, 'app', 'node_modules'))
    for (const dev of [
      'jest',
      'typescript',
      'eslint',
      'ts-jest',
      'supertest',
      'node-forge',
      'playwright-core',
      'autocannon',
    ])
      expect(staged).not.toContain(dev)
    // Every dependency of the server resolves inside the staged tree, the way node resolves it there
    // (asked of a plain node process: jest's own resolver maps @gatehouse/* to the sources).
    const app = realpathSync(join(sim.rootDir, 'app'))
    const deps = Object.keys(
      (JSON.parse(readRepoFile('packages/server/package.json')) as { dependencies: Record<string, string> })
        .dependencies,
    )
    const resolved = await run(process.execPath, [
      '-e',
      `const r = require('module').createRequire(process.argv[1]); for (const d of process.argv.slice(2)) console.log(d, require('fs').realpathSync(r.resolve(d)))`,
      join(app, 'packages', 'server', 'package.json'),
      ...deps,
    ])
    expect(resolved.stderr).toBe('')
    const lines = resolved.stdout.trim().split('\n')
    expect(lines).toHaveLength(deps.length)
    for (const l of lines) expect([l, l.split(' ')[1]!.startsWith(`${app}/`)]).toEqual([l, true])
    expect(readdirSync(join(sim.rootDir, 'app', 'node_modules', '@gatehouse'))).not.toContain('testing')
    expect(
      walk(join(sim.rootDir, 'app')).filter(
        (p) => p.endsWith('.tsbuildinfo') || p.includes(`${join('packages', 'server', 'src')}`),
      ),
    ).toEqual([])
    expect(statSync(join(sim.rootDir, 'auths')).mode & 0o777).toBe(0o700)
    expect(statSync(join(sim.rootDir, 'logs')).mode & 0o777).toBe(0o700)
  })

  it(`creates a client key in /auths as 65534 (the way docker compose run does)${withSeccomp ? ', under the seccomp profile' : ''}`, async () => {
    const r = await run(
      'unshare',
      simArgs(sim, [...entrypoint, 'keys', 'create', '--name', 'sim', ...cmd], { seccomp: withSeccomp }),
      { timeoutMs: 30_000 },
    )
    expect(r.stderr).toContain('created key_')
    expect(r.code).toBe(0)
    key = r.stdout.trim()
    expect(key).toMatch(/^gate_live_[A-Za-z0-9]{43}_[A-Za-z0-9]{6}$/)
  })

  it(`starts with the image's ENTRYPOINT and CMD and serves over TLS from /tls${withSeccomp ? ', under the seccomp profile' : ''}`, async () => {
    gateway = spawn('unshare', simArgs(sim, [...entrypoint, ...cmd], { seccomp: withSeccomp }), {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    gatewayExit = new Promise((r) => gateway!.on('close', (code) => r(code)))
    url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`did not start:\n${gatewayOut}`)), 20_000)
      const onData = (d: Buffer) => {
        gatewayOut += d.toString()
        const m = /"message":"gatehouse listening","url":"([^"]+)"/.exec(gatewayOut)
        if (m) {
          clearTimeout(timer)
          resolve(m[1]!)
        }
      }
      gateway!.stdout!.on('data', onData)
      gateway!.stderr!.on('data', onData)
      void gatewayExit.then((code) => {
        clearTimeout(timer)
        reject(new Error(`exited ${code}:\n${gatewayOut}`))
      })
    })
    expect(url).toBe(`https://127.0.0.1:${sim.port}`)
    expect((await request(`${url}/healthz`, { ca: serverCert.cert })).status).toBe(200)
  })

  it('proxies an authenticated request with the vault credential and refuses one without a key', async () => {
    const body = { model: 'claude-sonnet-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }
    const ok = await request(`${url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': key },
      body,
      ca: serverCert.cert,
    })
    expect(ok.status).toBe(200)
    expect(JSON.parse(ok.body)).toMatchObject({ type: 'message' })
    expect(upstream.last?.headers['x-api-key']).toBe(providerKey)
    const refused = await request(`${url}/v1/messages`, { method: 'POST', body, ca: serverCert.cert })
    expect(refused.status).toBe(401)
    expect(refused.body).not.toContain(providerKey)
  })

  it(`passes the image's HEALTHCHECK run inside the container${withSeccomp ? ' under the seccomp profile' : ''}`, async () => {
    const env = { GATEHOUSE_HEALTHCHECK_URL: `https://127.0.0.1:${sim.port}/healthz` }
    const healthy = await run('unshare', simArgs(sim, healthcheck, { seccomp: withSeccomp, env }), {
      timeoutMs: 20_000,
    })
    expect(healthy.stderr).toBe('')
    expect(healthy.code).toBe(0)
  })
})

describeSim('the image layout: confinement, drain and a root-owned volume', () => {
  it('cannot write outside /auths, /logs and /tmp, nor execute from /tmp, and holds no capability', async () => {
    const probe = `
      const fs = require('fs'), cp = require('child_process'), out = {}
      for (const p of ['/app/probe', '/app/packages/server/dist/probe.js', '/config/probe', '/tls/probe', '/probe', '/usr/probe', '/auths/probe', '/logs/probe', '/tmp/probe']) {
        try { fs.writeFileSync(p, 'x'); fs.unlinkSync(p); out[p] = 'ok' } catch (e) { out[p] = e.code }
      }
      try { fs.copyFileSync('/usr/bin/true', '/tmp/t'); fs.chmodSync('/tmp/t', 0o755); cp.execFileSync('/tmp/t'); out.execFromTmp = 'ok' } catch (e) { out.execFromTmp = e.code }
      const status = fs.readFileSync('/proc/self/status', 'utf8')
      out.uid = process.getuid(); out.gid = process.getgid(); out.cwd = process.cwd()
      out.capEff = /CapEff:\\s*(\\w+)/.exec(status)[1]; out.capBnd = /CapBnd:\\s*(\\w+)/.exec(status)[1]; out.noNewPrivs = /NoNewPrivs:\\s*(\\d)/.exec(status)[1]
      console.log(JSON.stringify(out))`
    // Without seccomp, so that exec from /tmp fails because of noexec, not because fork is refused.
    const r = await run('unshare', simArgs(sim, ['/usr/bin/node', '-e', probe], { seccomp: false }), {
      timeoutMs: 20_000,
    })
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout) as Record<string, string | number>
    for (const p of [
      '/app/probe',
      '/app/packages/server/dist/probe.js',
      '/config/probe',
      '/tls/probe',
      '/probe',
      '/usr/probe',
    ]) {
      expect([p, ['EROFS', 'EACCES'].includes(String(out[p]))]).toEqual([p, true])
    }
    for (const p of ['/auths/probe', '/logs/probe', '/tmp/probe']) expect([p, out[p]]).toEqual([p, 'ok'])
    expect(out.execFromTmp).toBe('EACCES')
    expect(out).toMatchObject({
      uid: NOBODY,
      gid: NOBODY,
      cwd: '/app',
      capEff: '0000000000000000',
      capBnd: '0000000000000000',
      noNewPrivs: '1',
    })
  })

  // Without python3-seccomp there is nothing to enforce the profile with (scripts/test-setup.sh, which npm test runs first, installs it).
  ;(withSeccomp ? it : it.skip)(
    'refuses to fork under the seccomp profile (threads still work)',
    async () => {
      const r = await run(
        'unshare',
        simArgs(
          sim,
          [
            '/usr/bin/node',
            '-e',
            "try { require('child_process').execFileSync('/usr/bin/true'); console.log('forked') } catch (e) { console.log(e.code) }",
          ],
          { seccomp: true },
        ),
        { timeoutMs: 20_000 },
      )
      expect(r.stdout.trim()).toBe('EPERM')
      expect(r.code).toBe(0)
    },
  )

  it('drains and exits 0 on SIGTERM, leaving its state in the volumes only, owned by 65534', async () => {
    expect(gateway).toBeDefined()
    // unshare's child execs its way into node: signal node itself, as the runtime does.
    const kids = readFileSync(`/proc/${gateway!.pid}/task/${gateway!.pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
    expect(kids).toHaveLength(1)
    process.kill(Number(kids[0]), 'SIGTERM')
    expect(await gatewayExit).toBe(0)
    expect(gatewayOut).toContain('"message":"stopped"')
    for (const secret of [providerKey, key]) expect(gatewayOut).not.toContain(secret)

    const written = walk(join(sim.rootDir, 'auths')).concat(walk(join(sim.rootDir, 'logs')))
    expect(written.map((p) => p.slice(sim.rootDir.length))).toEqual(
      expect.arrayContaining(['/auths/client-keys.json', '/logs/audit.log']),
    )
    for (const p of written) {
      const st = lstatSync(p)
      expect([p, st.uid, st.gid]).toEqual([p, NOBODY, NOBODY])
      if (p.startsWith(join(sim.rootDir, 'auths')))
        expect([p, st.mode & 0o777]).toEqual([p, st.isDirectory() ? 0o700 : 0o600])
    }
    // Nothing the server did touched the image itself.
    expect(walk(join(sim.rootDir, 'app')).filter((p) => lstatSync(p).uid === NOBODY)).toEqual([])
  })

  it('fails to start, naming the volume, when /auths is not writable by 65534 (a volume left owned by root)', async () => {
    chownSync(join(sim.rootDir, 'auths'), 0, 0)
    try {
      const r = await run('unshare', simArgs(sim, [...entrypoint, ...cmd], { seccomp: withSeccomp }), {
        timeoutMs: 20_000,
      })
      expect(r.code).not.toBe(0)
      expect(`${r.stdout}${r.stderr}`).toMatch(/EACCES[^\n]*\/auths/)
      expect(`${r.stdout}${r.stderr}`).not.toContain('gatehouse listening')
    } finally {
      chownSync(join(sim.rootDir, 'auths'), NOBODY, NOBODY)
    }
  })
})
