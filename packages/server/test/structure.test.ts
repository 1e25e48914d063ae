import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateClientKey } from '@gatehouse/client-auth'
import { scanSecrets } from '@gatehouse/security-check'
import { LAYERS } from '../src/gateway'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main } from '../src/main'

const SRC = join(__dirname, '..', 'src')

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : []
  })
}

describe('the server as a pipeline of small rooms', () => {
  it('builds the layers in SPEC §3 order, each named once', () => {
    expect(LAYERS.map((l) => `${l.stage}:${l.name}`)).toEqual([
      'front:request-id',
      'front:host-guard',
      'front:path-guard',
      'front:shutdown',
      'front:access-log',
      'front:security-headers',
      'admission:maintenance',
      'admission:ip-filter',
      'admission:address-limits',
      'admission:client-auth',
      'admission:routing',
      'admission:credential-check',
      'admission:endpoint-allowlist',
      'admission:request-guard',
      'admission:model-scope',
      'admission:request-limits',
      'admission:store-body',
      'admission:credential-injection',
      'admission:proxy',
    ])
  })

  it('keeps every file of packages/server/src at 300 lines or fewer', () => {
    const long = sourceFiles(SRC)
      .map((f) => ({ file: f.slice(SRC.length + 1), lines: readFileSync(f, 'utf8').split('\n').length }))
      .filter((f) => f.lines > 300)
    expect(long).toEqual([])
  })

  it('keeps createGateway under 150 lines', () => {
    const text = readFileSync(join(SRC, 'gateway', 'index.ts'), 'utf8')
    const start = text.indexOf('export function createGateway(')
    expect(start).toBeGreaterThan(-1)
    // The function ends at the first line that closes a block at column 0 after its start.
    const end = text.indexOf('\n}\n', start)
    expect(end).toBeGreaterThan(start)
    expect(text.slice(start, end).split('\n').length).toBeLessThan(150)
  })
})

describe('the CLI as a table of commands', () => {
  const run = async (argv: string[]): Promise<{ code: number | undefined; out: string; err: string }> => {
    let out = ''
    let err = ''
    const code = await main(argv, { out: (s) => void (out += s), err: (s) => void (err += s) }, {})
    return { code, out, err }
  }

  it('lists every command in --help, with the exit codes', async () => {
    const r = await run(['--help'])
    expect(r.code).toBe(EXIT_OK)
    for (const name of ['start', 'keys', 'config', 'doctor', 'audit', 'vault', 'storage', 'fingerprint']) expect([`gatehouse ${name}`, `gatehouse [${name}]`].some((u) => r.out.includes(u))).toBe(true)
    expect(r.out).toMatch(/Exit codes: 0 done, 1 failed or found a fault, 2 called wrongly/)
  })

  it('refuses an unknown command, an option the command does not take, and a missing sub-command with EXIT_USAGE', async () => {
    const unknown = await run(['frobnicate'])
    expect(unknown.code).toBe(EXIT_USAGE)
    expect(unknown.err).toContain('unknown command "frobnicate"')
    const foreign = await run(['doctor', '--name', 'x'])
    expect(foreign.code).toBe(EXIT_USAGE)
    expect(foreign.err).toContain('doctor does not take --name')
    const noSub = await run(['config'])
    expect(noSub.code).toBe(EXIT_USAGE)
    expect(noSub.err).toContain('config needs: check')
    const startSub = await run(['start', 'now'])
    expect(startSub.code).toBe(EXIT_USAGE)
  })

  it('answers EXIT_FAILURE, naming the YAML key, for a config that does not load', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-cli-'))
    try {
      const file = join(dir, 'bad.yaml')
      writeFileSync(file, 'server:\n  port: "eighty"\n')
      const r = await run(['config', 'check', '--config', file])
      expect(r.code).toBe(EXIT_FAILURE)
      expect(r.err).toMatch(/server\.port/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('gatehouse keys honeytokens', () => {
  it('prints the digests of auth.honeytokens, never a token, and gatehouse-check reports a leaked decoy as a honeytoken', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-honey-'))
    try {
      const decoy = generateClientKey()
      const real = generateClientKey()
      writeFileSync(join(dir, 'c.yaml'), `auth: { dir: ${JSON.stringify(join(dir, 'auths'))}, honeytokens: ["${decoy}"] }\nmetrics: { enabled: false }\n`)
      let out = ''
      let err = ''
      const code = await main(['keys', 'honeytokens', '--config', join(dir, 'c.yaml')], { out: (s) => void (out += s), err: (s) => void (err += s) }, {})
      expect(code).toBe(EXIT_OK)
      expect(out + err).not.toContain(decoy)
      writeFileSync(join(dir, 'honeytokens.txt'), out)
      // A repository that leaked the decoy and a real key: the decoy is named as such.
      mkdirSync(join(dir, 'repo'))
      writeFileSync(join(dir, 'repo', 'settings.env'), `GATEHOUSE_KEY=${decoy}\nOTHER_KEY=${real}\n`)
      const result = await scanSecrets({ paths: [join(dir, 'repo')], honeytokens: join(dir, 'honeytokens.txt'), gitignore: false })
      const byFile = result.findings.map((f) => ({ line: f.line, honeytoken: Boolean((f as { honeytoken?: boolean }).honeytoken) }))
      expect(byFile).toEqual([{ line: 1, honeytoken: true }, { line: 2, honeytoken: false }])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
