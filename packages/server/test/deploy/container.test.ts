import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import YAML from 'yaml'
import { generateCertificate } from '@gatehouse/testing'
import { loadConfig } from '@gatehouse/server'
import { startHarness, type Harness } from '../helpers'
import {
  loadScript,
  scriptsDir,
  dockerignoreExcludes,
  parseCopy,
  parseDockerfile,
  readRepoFile,
  root,
  run,
  type Stage,
} from './deploy-helpers'

type Json = Record<string, unknown>

const dockerfile = parseDockerfile(readRepoFile('Dockerfile'))
const dockerignore = readRepoFile('.dockerignore')
const [buildStage, runtimeStage] = dockerfile.stages as [Stage, Stage]
const instr = (stage: Stage, name: string) => stage.instructions.filter((i) => i.name === name)
const only = (stage: Stage, name: string) => {
  const all = instr(stage, name)
  expect(all).toHaveLength(1)
  return all[0]!.args
}
const execForm = (args: string): string[] => JSON.parse(args) as string[]
const envOf = (stage: Stage): Record<string, string> =>
  Object.fromEntries(
    instr(stage, 'ENV').flatMap((i) => [...i.args.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!])),
  )

/** The HEALTHCHECK command, run by this machine's node instead of the image's /nodejs/bin/node. */
function healthcheckCommand(): string[] {
  const hc = only(runtimeStage, 'HEALTHCHECK')
  const cmd = execForm(hc.slice(hc.indexOf('CMD') + 3).trim())
  expect(cmd.slice(0, 2)).toEqual(['/nodejs/bin/node', '-e'])
  return [process.execPath, ...cmd.slice(1)]
}

describe('Dockerfile', () => {
  it('builds in a full Node image and runs in distroless Node 20', () => {
    expect(dockerfile.stages).toHaveLength(2)
    expect(buildStage.from).toBe('${BUILD_IMAGE}')
    expect(buildStage.alias).toBe('build')
    expect(dockerfile.globalArgs.BUILD_IMAGE).toBe('node:20-bookworm-slim')
    expect(runtimeStage.from).toBe('${RUNTIME_IMAGE}')
    expect(dockerfile.globalArgs.RUNTIME_IMAGE).toBe('gcr.io/distroless/nodejs20-debian12:nonroot')
  })

  it('runs nothing in the runtime stage (distroless has no shell), only copies from the build stage', () => {
    expect(instr(runtimeStage, 'RUN')).toEqual([])
    for (const c of instr(runtimeStage, 'COPY')) expect(parseCopy(c.args).flags.from).toBe('build')
  })

  it('runs as 65534:65534 with the four volumes, GATEHOUSE_HOST=0.0.0.0 and /config/config.yaml', () => {
    expect(only(runtimeStage, 'USER')).toBe('65534:65534')
    expect(execForm(only(runtimeStage, 'VOLUME')).sort()).toEqual(['/auths', '/config', '/logs', '/tls'])
    expect(envOf(runtimeStage)).toMatchObject({ GATEHOUSE_HOST: '0.0.0.0', NODE_ENV: 'production' })
    expect(execForm(only(runtimeStage, 'ENTRYPOINT'))).toEqual([
      '/nodejs/bin/node',
      '/app/packages/server/dist/cli.js',
    ])
    expect(execForm(only(runtimeStage, 'CMD'))).toEqual(['--config', '/config/config.yaml'])
    expect(only(runtimeStage, 'WORKDIR')).toBe('/app')
  })

  it('gives the writable volumes to 65534 and stages them with the production tree', () => {
    const copies = instr(runtimeStage, 'COPY').map((c) => parseCopy(c.args))
    const byDest = Object.fromEntries(copies.map((c) => [c.dest, c]))
    expect(Object.keys(byDest).sort()).toEqual(['/app', '/auths', '/config', '/logs', '/tls'])
    for (const d of ['/auths', '/logs']) expect(byDest[d]!.flags.chown).toBe('65534:65534')
    for (const d of ['/app', '/config', '/tls']) expect(byDest[d]!.flags.chown).toBeUndefined()
    for (const [dest, c] of Object.entries(byDest)) expect(c.sources).toEqual([`/out${dest}`])
    // /out is what scripts/stage-runtime.js --container writes (checked for real in hardened-runtime.test.ts).
    expect(
      instr(buildStage, 'RUN')
        .map((r) => r.args)
        .join('\n'),
    ).toContain('node scripts/stage-runtime.js --container /out')
  })

  it('installs with the lockfile and builds before staging', () => {
    const runs = instr(buildStage, 'RUN').map((r) => r.args)
    expect(runs[0]).toMatch(/npm ci --ignore-scripts$/)
    expect(runs[1]).toBe('npm run build')
    expect(JSON.parse(readRepoFile('package.json')).scripts.build).toBe('tsc -b')
  })

  it('copies only files that exist and that .dockerignore lets into the build context', () => {
    const sources = instr(buildStage, 'COPY').flatMap((c) => parseCopy(c.args).sources)
    expect(sources).toEqual([
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.base.json',
      'LICENSE',
      'packages/',
      'scripts/stage-runtime.js',
    ])
    for (const s of sources) {
      expect(existsSync(join(root, s))).toBe(true)
      expect(dockerignoreExcludes(dockerignore, s.replace(/\/$/, ''))).toBe(false)
    }
  })

  it('.dockerignore keeps secrets, state, build output and the git history out of the context', () => {
    const out = [
      '.env',
      'auths/client-keys.json',
      'logs/audit.log',
      'tls/server.key',
      '.git/config',
      'node_modules/express/index.js',
      'config.yaml',
      'packages/server/dist/cli.js',
      'packages/server/node_modules/ajv/package.json',
      'packages/core/dist/.tsbuildinfo',
      'coverage/lcov.info',
      'packages/server/.env',
      'packages/server/auths/salt',
      'test-results.json',
      'examples/quickstart/config.yaml',
      'scripts/derive-seccomp.js',
    ]
    for (const p of out) expect([p, dockerignoreExcludes(dockerignore, p)]).toEqual([p, true])
    const kept = [
      'package.json',
      'packages/server/src/main.ts',
      'packages/server/package.json',
      'packages/server/tsconfig.json',
      'packages/core/src/index.ts',
      'scripts/stage-runtime.js',
    ]
    for (const p of kept) expect([p, dockerignoreExcludes(dockerignore, p)]).toEqual([p, false])
  })

  describe('HEALTHCHECK (run with node -e, as the image runs it)', () => {
    let h: Harness
    beforeAll(async () => {
      h = await startHarness()
    })
    afterAll(async () => {
      await h.close()
    })
    const probe = (env: NodeJS.ProcessEnv) => {
      const [node, ...args] = healthcheckCommand()
      return run(node!, args, { env: { PATH: process.env.PATH, ...env }, timeoutMs: 15_000 })
    }

    it('exits 0 when /healthz answers 200 on GATEHOUSE_PORT', async () => {
      const r = await probe({ GATEHOUSE_PORT: new URL(h.url).port })
      expect(r.code).toBe(0)
      expect(h.upstream.requests).toHaveLength(0)
    })

    it('exits 1 when nothing listens, and when /healthz is not 200', async () => {
      const down = http.createServer((_req, res) => res.writeHead(503).end('draining'))
      await new Promise<void>((r) => down.listen(0, '127.0.0.1', () => r()))
      const port = (down.address() as { port: number }).port
      try {
        expect((await probe({ GATEHOUSE_PORT: String(port) })).code).toBe(1)
      } finally {
        await new Promise((r) => down.close(r))
      }
      expect((await probe({ GATEHOUSE_PORT: String(port) })).code).toBe(1)
    })

    it('follows GATEHOUSE_HEALTHCHECK_URL to an HTTPS gateway with its own certificate', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'gh-hc-'))
      const cert = generateCertificate({ commonName: 'localhost' })
      writeFileSync(join(dir, 'server.crt'), cert.cert)
      writeFileSync(join(dir, 'server.key'), cert.key, { mode: 0o600 })
      const tlsGateway = await startHarness((c) => {
        c.server.tls = {
          enabled: true,
          cert_file: join(dir, 'server.crt'),
          key_file: join(dir, 'server.key'),
          min_version: '1.2',
        }
      })
      try {
        expect(tlsGateway.url).toMatch(/^https:/)
        expect((await probe({ GATEHOUSE_HEALTHCHECK_URL: `${tlsGateway.url}/healthz` })).code).toBe(0)
        // Plain HTTP to a TLS port is not healthy.
        expect((await probe({ GATEHOUSE_PORT: new URL(tlsGateway.url).port })).code).toBe(1)
      } finally {
        await tlsGateway.close()
        rmSync(dir, { recursive: true, force: true })
      }
    })
  })
})

describe('what the build stage stages (scripts/stage-runtime.js)', () => {
  const stager = loadScript(join(scriptsDir, 'stage-runtime.js')) as {
    runtimeClosure: (lock: unknown) => { external: string[]; workspaces: string[] }
    CONTAINER_CONFIG: string
  }
  const lock = JSON.parse(readRepoFile('package-lock.json')) as {
    packages: Record<string, { hasInstallScript?: boolean }>
  }

  it('needs no install script at run time, so npm ci --ignore-scripts builds a working image', () => {
    const { external } = stager.runtimeClosure(lock)
    expect(external.length).toBeGreaterThan(20)
    expect(external.filter((p) => lock.packages[p]?.hasInstallScript)).toEqual([])
  })

  it('bakes a /config/config.yaml that loads and keeps every writable path on a volume', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-image-cfg-'))
    try {
      writeFileSync(join(dir, 'config.yaml'), stager.CONTAINER_CONFIG)
      const { config, warnings } = loadConfig({ file: join(dir, 'config.yaml'), env: {}, cwd: dir })
      expect(warnings).toEqual([])
      expect(config.server.host).toBe('0.0.0.0')
      expect(config.server.port).toBe(8317)
      expect(config.auth.dir).toBe('/auths')
      expect(config.logging.audit.file).toBe('/logs/audit.log')
      expect([config.server.tls.cert_file, config.server.tls.key_file]).toEqual([
        '/tls/server.crt',
        '/tls/server.key',
      ])
      expect(config.metrics).toMatchObject({ host: '0.0.0.0', port: 9090 })
      // The image's EXPOSE matches.
      expect(only(runtimeStage, 'EXPOSE').split(/\s+/)).toEqual(['8317', '9090'])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('docker-compose.yml', () => {
  const compose = YAML.parse(readRepoFile('docker-compose.yml')) as {
    services: Record<string, Json>
    networks: Record<string, Json>
  }
  const gw = compose.services.gatehouse!
  const redis = compose.services.redis!

  it('applies the seed hardening to the gateway', () => {
    expect(gw.user).toBe('65534:65534')
    expect(gw.read_only).toBe(true)
    expect(gw.cap_drop).toEqual(['ALL'])
    expect(gw.cap_add).toBeUndefined()
    expect(gw.privileged).toBeUndefined()
    expect(gw.init).toBeUndefined()
    expect(gw.security_opt).toEqual(['no-new-privileges:true', 'seccomp=./seccomp-profile.json'])
    const tmp = (gw.tmpfs as string[]).find((t) => t.startsWith('/tmp:'))!
    expect(tmp.split(':')[1]!.split(',')).toEqual(expect.arrayContaining(['noexec', 'nosuid']))
    const limits = ((gw.deploy as Json).resources as Json).limits as Json
    expect(limits).toMatchObject({ cpus: '2', memory: '1G' })
    expect(Number(limits.pids)).toBeGreaterThan(0)
  })

  it('mounts the image volumes, /config and /tls read-only', () => {
    const mounts = Object.fromEntries(
      (gw.volumes as string[]).map((v) => {
        const [, target, mode] = v.split(':')
        return [target, mode]
      }),
    )
    expect(mounts).toEqual({ '/config': 'ro', '/auths': 'rw', '/logs': 'rw', '/tls': 'ro' })
    expect(Object.keys(mounts).sort()).toEqual(execForm(only(runtimeStage, 'VOLUME')).sort())
  })

  it('publishes the gateway port and keeps metrics on the host loopback', () => {
    expect(gw.ports).toEqual(['8317:8317', '127.0.0.1:9090:9090'])
  })

  it('waits longer than the server drains before killing it', () => {
    const grace = Number(/^(\d+)s$/.exec(String(gw.stop_grace_period))?.[1])
    expect(grace).toBeGreaterThan(30) // server.timeouts.shutdown_grace default
  })

  it('the seccomp profile it names is there and denies by default', () => {
    const profile = JSON.parse(readFileSync(join(root, 'seccomp-profile.json'), 'utf8')) as Json
    expect(profile.defaultAction).toBe('SCMP_ACT_ERRNO')
  })

  it('offers Redis only under the distributed profile, on an internal network, hardened too', () => {
    expect(redis.profiles).toEqual(['distributed'])
    expect(redis.ports).toBeUndefined()
    expect(redis.networks).toEqual(['backend'])
    expect(compose.networks.backend).toEqual({ internal: true })
    expect(gw.networks).toEqual(expect.arrayContaining(['egress', 'backend']))
    expect(redis.read_only).toBe(true)
    expect(redis.cap_drop).toEqual(['ALL'])
    expect(redis.security_opt).toEqual(['no-new-privileges:true'])
  })

  it('requires the encryption key from the environment and commits no secret', () => {
    const env = gw.environment as Record<string, string>
    expect(env.GATEHOUSE_ENCRYPTION_KEY).toMatch(/^\$\{GATEHOUSE_ENCRYPTION_KEY:\?/)
    for (const [k, v] of Object.entries(env))
      expect([k, v]).toEqual([k, expect.stringMatching(/^\$\{[A-Z_]+(:-|:\?)/)])
  })
})
