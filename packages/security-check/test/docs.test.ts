import { execFileSync } from 'node:child_process'
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { generateCertificate } from '@gatehouse/testing'
import { runCli, tempDir } from './helpers'

// The README and examples/ci-security-check promise commands that "work as written": every
// gatehouse-check invocation in them is run here, and every YAML file or block must parse.

const PKG = join(__dirname, '..')
const EXAMPLES = join(PKG, '..', '..', 'examples', 'ci-security-check')
const README = readFileSync(join(PKG, 'README.md'), 'utf8')
const exampleFiles = ['secret-scan.yml', '.pre-commit-config.yaml', '.husky/pre-commit', 'README.md'].map(
  (f) => ({
    name: `examples/ci-security-check/${f}`,
    text: readFileSync(join(EXAMPLES, f), 'utf8'),
  }),
)
const sources = [{ name: 'README.md', text: README }, ...exampleFiles]

/** `npx gatehouse-check …` invocations in a text, without npx, redirections and trailing comments. */
function invocations(text: string): string[][] {
  const out: string[][] = []
  for (const m of text.matchAll(
    /npx (?:--no-install )?gatehouse-check ((?:permissions|secrets|tls|all|install-hook)\b[^\n`'"#>|)]*)/g,
  )) {
    out.push(m[1]!.trim().split(/\s+/))
  }
  return out
}

const yamlBlocks = (text: string): string[] =>
  [...text.matchAll(/```ya?ml\n([\s\S]*?)```/g)].map((m) => m[1]!)

describe('documented commands and configuration', () => {
  it.each(sources.map((s) => [s.name, s.text]))('%s: every YAML file and block parses', (name, text) => {
    const docs = name.endsWith('.yml') || name.endsWith('.yaml') ? [text] : yamlBlocks(text)
    for (const doc of docs) expect(() => parse(doc) as unknown).not.toThrow()
  })

  it('pins every GitHub action to a full commit SHA', () => {
    for (const { text } of sources) {
      for (const m of text.matchAll(/uses: ([^\s@]+)@(\S+)/g)) expect(m[2]).toMatch(/^[0-9a-f]{40}$/)
    }
  })

  it('gives the pre-commit framework the staged scan without file names', () => {
    const config = parse(exampleFiles[1]!.text) as { repos: Array<{ hooks: Array<Record<string, unknown>> }> }
    expect(config.repos[0]!.hooks[0]).toMatchObject({
      entry: 'npx --no-install gatehouse-check secrets --staged',
      language: 'system',
      pass_filenames: false,
    })
  })

  it('runs every documented gatehouse-check command without a usage error', async () => {
    const { dir, cleanup } = tempDir()
    try {
      execFileSync('git', ['init', '-q'], { cwd: dir })
      mkdirSync(join(dir, 'auths'), { mode: 0o700 })
      chmodSync(join(dir, 'auths'), 0o700)
      const { cert, key } = generateCertificate({ days: 90 })
      mkdirSync(join(dir, 'tls'))
      writeFileSync(join(dir, 'tls', 'tls.crt'), cert)
      writeFileSync(join(dir, 'tls', 'tls.key'), key, { mode: 0o600 })
      writeFileSync(join(dir, '.gitignore'), 'tls/\nnode_modules/\n')
      // The dependency scan's example: an installed package, and the directory its baseline goes in.
      mkdirSync(join(dir, 'node_modules', 'pkg'), { recursive: true })
      writeFileSync(join(dir, 'node_modules', 'pkg', 'index.js'), 'module.exports = 1\n')
      mkdirSync(join(dir, 'ci'))
      const commands = sources.flatMap((s) => invocations(s.text).map((argv) => ({ from: s.name, argv })))
      expect(commands.length).toBeGreaterThanOrEqual(12)
      for (const { from, argv } of commands) {
        const r = await runCli(argv, { cwd: dir, env: { ...process.env, npm_config_fetch_retries: '0' } })
        if (r.code === 2) throw new Error(`${from}: gatehouse-check ${argv.join(' ')} exits 2: ${r.stderr}`)
        expect([0, 1]).toContain(r.code)
      }
    } finally {
      cleanup()
    }
  }, 60_000)
})
