import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { clientKeyLookAlikes, fakeChecksummedClientKey } from '@gatehouse/testing'
import { FAKE_KEYS, expectMasked, runCli, tempDirPerTest } from './helpers'

const PKG_DIR = join(__dirname, '..')
const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex')

/** The regexes of the rules in the shipped .gitleaks.toml, by rule id. */
function gitleaksRules(): Map<string, RegExp> {
  const toml = readFileSync(join(PKG_DIR, '.gitleaks.toml'), 'utf8')
  const rules = new Map<string, RegExp>()
  for (const block of toml.split('[[rules]]').slice(1)) {
    const id = /^id = "([^"]+)"$/m.exec(block)![1]!
    rules.set(id, new RegExp(/^regex = '''(.*)'''$/m.exec(block)![1]!))
  }
  return rules
}

/** The secretlint pattern documented in the README (a `/…/` string in its JSON block). */
function secretlintPattern(): RegExp {
  const readme = readFileSync(join(PKG_DIR, 'README.md'), 'utf8')
  const json = /```json\n(\{\n {2}"rules": \[\n {4}\{\n {6}"id": "@secretlint\/secretlint-rule-pattern"[\s\S]*?)```/.exec(readme)![1]!
  const config = JSON.parse(json) as { rules: Array<{ options: { patterns: Array<{ patterns: string[] }> } }> }
  const source = config.rules[0]!.options.patterns[0]!.patterns[0]!
  return new RegExp(source.slice(1, source.lastIndexOf('/')))
}

/** Texts a key shows up in, and strings of other shapes no rule may match. */
const contexts = (key: string): string[] => [key, `KEY=${key}\n`, `"x-api-key": "${key}"`, `Bearer ${key}.`]
function otherShapes(): string[] {
  const key = fakeChecksummedClientKey()
  return [
    'gate_live_****',
    key.slice(0, -1),
    `${key}x`,
    `x${key}`,
    key.replace('gate_live_', 'gate_prod_'),
    key.replace('gate_live_', 'gatelive_'),
    `gate_live_${key.slice(10, 52)}`,
  ]
}

describe('the gitleaks and secretlint rules for Gatehouse client keys', () => {
  it('match generated keys in the current shape, and nothing of another shape', () => {
    const current = [gitleaksRules().get('gatehouse-client-key')!, secretlintPattern()]
    for (const re of current) {
      for (const key of [fakeChecksummedClientKey(), fakeChecksummedClientKey('test')]) {
        for (const text of contexts(key)) expect(re.exec(text)?.includes(key)).toBe(true)
      }
      for (const text of [...otherShapes(), FAKE_KEYS['gatehouse-client-key']!()]) expect(re.test(text)).toBe(false)
    }
  })

  it('ship a legacy rule for gitleaks that matches keys issued before checksums, not current ones', () => {
    const legacy = gitleaksRules().get('gatehouse-client-key-legacy')!
    const key = FAKE_KEYS['gatehouse-client-key']!()
    for (const text of contexts(key)) expect(legacy.exec(text)?.includes(key)).toBe(true)
    for (const text of [fakeChecksummedClientKey(), 'gate_live_****', `x${key}`, `${key}x`]) expect(legacy.test(text)).toBe(false)
  })
})

describe('gatehouse-check secrets on Gatehouse client keys', () => {
  const tmp = tempDirPerTest()

  it('reports a key with a valid checksum and a legacy key, never a look-alike of the current shape', async () => {
    const dir = tmp()
    const key = fakeChecksummedClientKey()
    const legacy = FAKE_KEYS['gatehouse-client-key']!()
    writeFileSync(join(dir, 'real.env'), `GATEHOUSE_KEY=${key}\nOLD_KEY=${legacy}\n`)
    writeFileSync(join(dir, 'fake.env'), clientKeyLookAlikes().map((k, i) => `K${i}=${k}`).join('\n'))
    const r = await runCli(['secrets', '.'], { cwd: dir })
    expect(r.code).toBe(1)
    expect(r.stdout).toContain('real.env:1:15  gatehouse-client-key  gate_live_****  (Gatehouse client key)')
    expect(r.stdout).toContain('real.env:2:9  gatehouse-client-key  gate_live_****')
    expect(r.stdout).not.toContain('fake.env')
    expect(r.stdout).toContain('2 findings in 2 files scanned')
    expectMasked(r.stdout + r.stderr, [key, legacy])
  })
})

describe('gatehouse-check secrets --honeytokens', () => {
  const tmp = tempDirPerTest()

  it('reports a key whose digest is listed as a honeytoken, in text and JSON', async () => {
    const dir = tmp()
    const decoy = fakeChecksummedClientKey()
    const real = fakeChecksummedClientKey()
    writeFileSync(join(dir, 'notes.md'), `decoy ${decoy}\nreal ${real}\n`)
    writeFileSync(join(dir, 'honeytokens.txt'), `# digests written by the gateway\n\n${sha256(decoy).toUpperCase()}\n`)
    const text = await runCli(['secrets', 'notes.md', '--honeytokens', 'honeytokens.txt'], { cwd: dir })
    expect(text.code).toBe(1)
    expect(text.stdout).toContain('notes.md:1:7  gatehouse-client-key  gate_live_****  (HONEYTOKEN: a decoy key that never authenticates')
    expect(text.stdout).toContain('notes.md:2:6  gatehouse-client-key  gate_live_****  (Gatehouse client key)')
    const json = await runCli(['secrets', 'notes.md', '--honeytokens', 'honeytokens.txt', '--format', 'json'], { cwd: dir })
    const { findings } = JSON.parse(json.stdout) as { findings: Array<Record<string, unknown>> }
    expect(findings.map((f) => [f.line, f.honeytoken])).toEqual([[1, true], [2, undefined]])
    expectMasked(text.stdout + text.stderr + json.stdout + json.stderr, [decoy, real])
  })

  it('refuses a file that holds a token instead of a digest, or does not exist (GH_SC_HONEYTOKENS_INVALID, exit 2), never showing the line', async () => {
    const dir = tmp()
    const token = fakeChecksummedClientKey()
    writeFileSync(join(dir, 'a.txt'), 'nothing here\n')
    writeFileSync(join(dir, 'tokens.txt'), `${sha256('x')}\n${token}\n`)
    const bad = await runCli(['secrets', 'a.txt', '--honeytokens', 'tokens.txt'], { cwd: dir })
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('honeytokens file "tokens.txt" line 2 is not a sha256 digest')
    expectMasked(bad.stdout + bad.stderr, [token])
    const missing = await runCli(['secrets', 'a.txt', '--honeytokens', 'none.txt'], { cwd: dir })
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('honeytokens file "none.txt" does not exist')
  })
})
