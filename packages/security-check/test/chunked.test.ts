import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SECRET_RULES } from '../src'
import { patternReach } from '../src/secrets/bounds'
import { CHUNK_BYTES, RULE_REACH, scanFile } from '../src/secrets/chunked'
import { SecretScanner, type TextHit } from '../src/secrets/engine'
import { scanSecrets } from '../src/secrets/scan'
import { ALNUM, CLI, FAKE_KEYS, URLSAFE, ensureBuilt, expectMasked, rand, tempDirPerTest } from './helpers'

/** The longest credential any rule matches: a Google OAuth access token of 2048 characters. */
const longestToken = (): string => `ya29.${Array.from({ length: 64 }, () => rand(URLSAFE, 32)).join('')}`
const KEYS: Record<string, () => string> = { ...FAKE_KEYS, 'google-oauth-access-token': longestToken }

describe('patternReach', () => {
  it.each<[string, number, number]>([
    ['abc', 3, 0],
    ['a{2,5}b?', 6, 0],
    ['(?:ab|c){0,3}x', 7, 0],
    ['\\\\n[^\\r\\n\\\\]{0,200}', 202, 0],
    ['sk-([A-Za-z0-9]{48})(?![A-Za-z0-9])', 51, 1],
    ['(?<name>a|bc)\\b\\.', 3, 0],
  ])('bounds %s by %d characters and %d of lookahead', (source, match, lookaround) => {
    expect(patternReach(source)).toEqual({ match, lookaround })
  })

  it.each(['a+', 'a*', 'a{2,}', '(a)\\1'])('refuses %s, which has no bound', (source) => {
    expect(() => patternReach(source)).toThrow(/unbounded|back-reference/)
  })

  it('bounds every rule, and the overlap covers every generated credential', () => {
    for (const rule of SECRET_RULES) {
      const { match } = patternReach(rule.pattern)
      expect(match).toBeLessThan(RULE_REACH)
      const key = FAKE_KEYS[rule.id]?.()
      if (key !== undefined && rule.id !== 'private-key') expect(key.length).toBeLessThanOrEqual(match)
    }
    // The longest rule (an OAuth access token of 2048 characters) sets the overlap.
    expect(RULE_REACH).toBe(Math.max(...SECRET_RULES.map((r) => patternReach(r.pattern).match + patternReach(r.pattern).lookaround)))
  })
})

/** ASCII filler of exactly `n` characters, in lines of 40, ending with a newline. */
const filler = (n: number): string => {
  const line = `const filler = "${rand(ALNUM, 18)}"; // ok\n`
  return n <= 0 ? '' : `${line.repeat(Math.ceil(n / line.length)).slice(0, n - 1)}\n`
}

const summary = (hits: readonly TextHit[]): Array<[string, number, number, string]> =>
  hits.map((h) => [h.rule, h.line, h.column, h.fingerprint])

describe('scanFile in chunks', () => {
  const dir = tempDirPerTest('gh-sc-chunk-')
  const CHUNK = 4096
  const scanner = new SecretScanner()
  const scanChunked = (file: string): TextHit[] => {
    const r = scanFile(file, scanner, { buffer: Buffer.alloc(CHUNK) })
    if (r.kind !== 'text') throw new Error(`not scanned: ${r.kind}`)
    return r.hits
  }

  // Where a window boundary falls: where a read ends (k * CHUNK bytes), and where a window's
  // owned range ends (RULE_REACH before the text read so far), for an ASCII file.
  const boundaries = [3 * CHUNK, 3 * CHUNK - RULE_REACH]
  const rules = ['github-token', 'aws-secret-access-key', 'private-key', 'slack-webhook-url', 'google-oauth-access-token']
  const cases: Array<[string, string, number, 'starts at' | 'straddles' | 'ends at']> = []
  for (const rule of rules)
    for (const at of boundaries)
      for (const where of ['starts at', 'straddles', 'ends at'] as const) cases.push([rule, at === 3 * CHUNK ? 'a read' : 'an owned range', at, where])

  it.each(cases.map(([rule, kind, at, where]) => [rule, where, kind, at] as const))(
    'finds a %s key that %s %s boundary once, on its line',
    (rule, where, _kind, at) => {
      const key = KEYS[rule]!()
      const lead = 'token = "'
      const offset = where === 'starts at' ? 0 : where === 'straddles' ? Math.floor(key.length / 2) : key.length
      const before = filler(at - offset - lead.length) + lead
      const text = `${before}${key}"\n${filler(4 * CHUNK)}`
      writeFileSync(join(dir(), 'big.txt'), text)
      const hits = scanChunked(join(dir(), 'big.txt'))
      const whole = scanner.scanText(text)
      expect(summary(hits)).toEqual(summary(whole))
      expect(hits).toHaveLength(1)
      expect(hits[0]).toMatchObject({ rule, line: before.split('\n').length })
      expectMasked(JSON.stringify(hits), [key])
    },
  )

  it('decodes characters cut by a read and counts columns in UTF-16 units', () => {
    // Four-byte and two-byte characters around every read boundary.
    const line = `// ${'é😀'.repeat(9)} ${rand(ALNUM, 10)}\n`
    const keys: string[] = []
    let text = ''
    while (Buffer.byteLength(text) < 6 * CHUNK) {
      text += line.repeat(3)
      const key = FAKE_KEYS['github-token']!()
      keys.push(key)
      text += `é😀 = "${key}" // ${'😀'.repeat(4)}\n`
    }
    writeFileSync(join(dir(), 'utf8.txt'), text)
    const hits = scanChunked(join(dir(), 'utf8.txt'))
    expect(hits).toHaveLength(keys.length)
    expect(summary(hits)).toEqual(summary(scanner.scanText(text)))
  })

  it('reports the same findings as a whole-file scan, for keys of every rule at random places', () => {
    const parts: string[] = []
    for (let i = 0; i < 120; i++) {
      const rule = SECRET_RULES[i % SECRET_RULES.length]!.id
      const key = KEYS[rule]?.()
      parts.push(filler(50 + ((i * 7919) % 900)))
      if (key !== undefined) parts.push(`value: "${key}"\n`)
    }
    const text = parts.join('')
    writeFileSync(join(dir(), 'mixed.txt'), text)
    const whole = scanner.scanText(text)
    expect(whole.length).toBeGreaterThan(100)
    expect(summary(scanChunked(join(dir(), 'mixed.txt')))).toEqual(summary(whole))
  })

  it('reports the same findings as a whole-file scan in one line of many chunks (keys and their keywords cut anywhere)', () => {
    // No newline to start a window at: each window starts RULE_REACH and a little before its range.
    const parts: string[] = []
    for (let i = 0; parts.join('').length < 40 * CHUNK; i++) {
      const rule = SECRET_RULES[i % SECRET_RULES.length]!.id
      const key = rule === 'private-key' ? undefined : KEYS[rule]?.()
      parts.push(`;var v${i}=${'0'.repeat((i * 37) % 300)};`)
      if (key !== undefined) parts.push(`k${i}="${key}"`)
    }
    const text = parts.join('')
    writeFileSync(join(dir(), 'one-line.js'), text)
    const whole = scanner.scanText(text)
    expect(whole.length).toBeGreaterThan(100)
    expect(new Set(whole.map((h) => h.rule)).size).toBe(SECRET_RULES.length - 1)
    expect(summary(scanChunked(join(dir(), 'one-line.js')))).toEqual(summary(whole))
  })

  it('honours an allow comment on the line before a key that straddles a boundary, and within a very long line', () => {
    const key = FAKE_KEYS['npm-token']!()
    const before = `${filler(2 * CHUNK - 60)}// gatehouse-check:allow-next-line\n`
    const text = `${before}x = "${key}"\n${filler(CHUNK)}`
    writeFileSync(join(dir(), 'allow.txt'), text)
    const hits = scanChunked(join(dir(), 'allow.txt'))
    expect(hits.map((h) => [h.line, h.allowed])).toEqual([[before.split('\n').length, true]])

    // The marker starts a line of 6000 characters; the key at its end straddles a read.
    const lineKey = FAKE_KEYS['npm-token']!()
    const head = `// gatehouse-check:allow fixture ${'x'.repeat(6000)} = "`
    const lead = filler(3 * CHUNK - 10 - head.length)
    writeFileSync(join(dir(), 'long-line.txt'), `${lead}${head}${lineKey}"\n${filler(CHUNK)}`)
    expect(scanChunked(join(dir(), 'long-line.txt')).map((h) => [h.line, h.column, h.allowed])).toEqual([
      [lead.split('\n').length, head.length + 1, true],
    ])

    // One line of 5 chunks (minified code): the key's column is counted from the line's start.
    const longKey = FAKE_KEYS['github-token']!()
    const minified = `${'var a=1;'.repeat((5 * CHUNK) / 8)}t="${longKey}";${'var b=2;'.repeat(CHUNK / 8)}`
    writeFileSync(join(dir(), 'min.js'), minified)
    const [hit] = scanChunked(join(dir(), 'min.js'))
    expect(hit).toMatchObject({ line: 1, column: 5 * CHUNK + 4 })
  })

  it('finds keys at the boundaries of real-size chunks through scanSecrets', async () => {
    const keys = [FAKE_KEYS['github-token']!(), FAKE_KEYS['openai-project-key']!(), FAKE_KEYS['gitlab-token']!()]
    const parts: string[] = []
    let length = 0
    keys.forEach((key, i) => {
      // Key i starts at, straddles, ends at the end of read i + 1.
      const start = (i + 1) * CHUNK_BYTES - [0, Math.floor(key.length / 2), key.length][i]!
      parts.push(filler(start - 3 - length), 'k="', key, '"\n')
      length = start
      length += key.length + 2
    })
    parts.push(filler(CHUNK_BYTES / 2))
    const text = parts.join('')
    writeFileSync(join(dir(), 'large.log'), text)
    const result = await scanSecrets({ cwd: dir() })
    expect(result).toMatchObject({ ok: false, files: 1, bytes: text.length, skipped: { tooLarge: 0 } })
    expect(result.findings.map((f) => [f.line, f.rule])).toEqual(
      summary(scanner.scanText(text)).map(([rule, line]) => [line, rule]),
    )
    expect(result.findings).toHaveLength(3)
  })
})

describe('a 50 MB file', () => {
  const dir = tempDirPerTest('gh-sc-50mb-')
  beforeAll(() => ensureBuilt())

  it('is scanned whole, in bounded memory', () => {
    const key = FAKE_KEYS['stripe-secret-key']!()
    const size = 50 * 1024 * 1024
    const buf = Buffer.alloc(size, `const filler = "${rand(ALNUM, 20)}"; // ok\n`)
    const tail = Buffer.from(`\nstripe = "${key}"\n`)
    tail.copy(buf, size - tail.length)
    writeFileSync(join(dir(), 'huge.txt'), buf)
    // A child process, so the peak resident size is this scan's alone, with its heap capped at
    // 16 MB (about 8 MB is in use once the package is loaded): a scan that held the file's text
    // whole dies of it, whatever the machine's load.
    const script = `
      const { scanSecrets } = require(${JSON.stringify(join(CLI, '..', 'index.js'))})
      let buffers = 0
      const sample = setInterval(() => { buffers = Math.max(buffers, process.memoryUsage().arrayBuffers) }, 2)
      scanSecrets({ cwd: ${JSON.stringify(dir())} }).then((r) => {
        clearInterval(sample)
        process.stdout.write(JSON.stringify({ buffers, bytes: r.bytes, findings: r.findings.map((f) => [f.line, f.rule]), skipped: r.skipped.tooLarge }))
      })`
    const out = JSON.parse(execFileSync(process.execPath, ['--max-semi-space-size=1', '--max-old-space-size=16', '-e', script], { encoding: 'utf8', timeout: 60_000 })) as {
      buffers: number
      bytes: number
      findings: Array<[number, string]>
      skipped: number
    }
    let lines = 2 // the tail's own newline, and 1-based
    for (let i = buf.indexOf(10); i !== -1 && i < size - tail.length; i = buf.indexOf(10, i + 1)) lines++
    expect(out).toMatchObject({ bytes: size, skipped: 0, findings: [[lines, 'stripe-secret-key']] })
    // The text never whole: the capped heap above. The bytes never whole: reading the file in one
    // piece holds 50 MB of buffers; in chunks they stay at a few of 96 KiB. (The peak resident size
    // was the first measure here, but on a loaded machine it grew by up to 100 MB with memory the
    // collector had freed and not yet returned: it measured the machine, not the scan.)
    expect(out.buffers).toBeLessThan(8 * 1024 * 1024)
  })
})
