import { randomBytes } from 'node:crypto'
import { createMasker, maskSecrets } from '@gatehouse/core'

/**
 * The masker runs on upstream error bodies (up to 256 KiB) and on anything a client can put in a
 * log line: no input may make it slow. Each family below defeated one rule once (a PEM BEGIN
 * rescanned 10,000 characters per header; a long `sk-…` run made V8 backtrack per character).
 */
const KIB = 1024
const fill = (unit: string, size: number): string => unit.repeat(Math.ceil(size / unit.length)).slice(0, size)
// Flattened now, so the timing measures the masker, not V8 joining a rope.
const flat = (s: string): string => Buffer.from(s, 'utf8').toString('utf8')

const FAMILIES: Record<string, string> = {
  'repeated PEM headers': '-----BEGIN PRIVATE KEY-----\n',
  'repeated RSA PEM headers': '-----BEGIN RSA PRIVATE KEY-----',
  'PEM END lines only': '-----END PRIVATE KEY-----',
  'Bearer runs': 'Bearer ',
  'Bearer tokens': 'Bearer aaaaaaaa*',
  'sk- runs': 'sk-',
  'sk-ant- runs': 'sk-ant-',
  'gate_live_ runs': 'gate_live_',
  'key=value pairs': '&token=a',
  'query keys': '?key=',
  'a= runs': 'a=',
  'scheme runs': 'http://',
  'userinfo runs': 'http://u:',
  'JWT heads': 'eyJaaaaaaaaa.',
  'JWT bodies': 'eyJaaaaaaaa.aaaaaaaa.',
  'SendGrid runs': 'SG.aaaaaaaaaaaaaaaa',
  'base64 runs': 'A',
  'whitespace': ' ',
  'Slack webhook prefixes': 'https://hooks.slack.com/services/',
  'AWS prefixes': 'AKIA',
}

/**
 * The best time of `runs` maskings, each of a fresh copy of `input` (made outside the timing): V8
 * caches the results of a global regex over the very same string, so timing one string again would
 * time the cache, and a small input cached against a large one not cached reads as super-linear.
 */
function best(input: string, runs = 5): number {
  maskSecrets(flat(input)) // warm-up
  let min = Infinity
  for (let i = 0; i < runs; i++) {
    const copy = flat(input)
    const t = process.hrtime.bigint()
    maskSecrets(copy)
    min = Math.min(min, Number(process.hrtime.bigint() - t) / 1e6)
  }
  return min
}

describe('masking in linear time', () => {
  // Absolute budgets with a wide margin, not ratios: V8 may run one regex on its backtracking engine
  // and then on its linear one, so the same input takes 1 ms or 60 ms from run to run, which no
  // ratio of small timings survives. A super-linear rule does not fit at all: one that rescans even
  // 1,000 characters per candidate needs billions of steps for 2 MiB of candidates.
  it.each(Object.entries(FAMILIES))('%s: 512 KiB masks within 500 ms and 2 MiB within 2 s', (_name, unit) => {
    for (const [size, budgetMs] of [
      [512 * KIB, 500],
      [2048 * KIB, 2000],
    ] as const) {
      const ms = best(flat(fill(unit, size)), 2)
      expect({ size, ms: Math.round(ms), within: ms < budgetMs }).toEqual({ size, ms: Math.round(ms), within: true })
    }
  })

  it.each(Object.entries(FAMILIES))('%s: a real secret after the adversarial prefix is still masked', (_name, unit) => {
    const anthropic = `sk-ant-api03-${randomBytes(40).toString('base64url')}`
    const known = `zq${randomBytes(24).toString('hex')}`
    const text = flat(`${fill(unit, 256 * KIB)}\n x-api-key: ${anthropic} and ${known} end`)
    const out = createMasker({ knownSecrets: [known] }).text(text)
    // (Booleans, not the text: a failure should not print 256 KiB.)
    expect(out.includes(anthropic)).toBe(false)
    expect(out.includes(known)).toBe(false)
    // A PEM BEGIN without an END within reach masks to the end of the text, the key included.
    if (!unit.includes('BEGIN')) expect(out.includes('sk-ant-****')).toBe(true)
  })

  it('masks a PEM key after ten thousand BEGIN lines without an END', () => {
    const body = randomBytes(600).toString('base64')
    const pem = `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----`
    const out = maskSecrets(`${fill('-----BEGIN PRIVATE KEY-----\n', 28 * 10_000)}${pem}`)
    expect(out.includes(body)).toBe(false)
  })
})
