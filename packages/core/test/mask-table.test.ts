import { randomBytes } from 'node:crypto'
import { clientKeyLookAlikes, expectMasked, FAKE_KEYS, fakeChecksummedClientKey, secretPart } from '@gatehouse/testing'
import { createMasker, MASK, MASK_RULE_NAMES, maskSecret, maskSecrets, maskValue, SECRET_RULE_IDS, SECRET_RULES } from '../src'

const MIB = 1024 * 1024
/** The part of a test key before its random part: `sk-ant-api03-`, `https://hooks.slack.com/services/`. */
const prefixOf = (key: string): string => key.slice(0, key.indexOf(secretPart(key)))

describe('the masker over the secret rule table', () => {
  it('names every rule of the table among its rules', () => {
    expect(MASK_RULE_NAMES).toEqual(expect.arrayContaining([...SECRET_RULE_IDS]))
  })

  it.each(SECRET_RULES.map((r) => [r.id]))('masks the %s test vector in text, values and JSON, keeping a prefix', (id) => {
    const key = FAKE_KEYS[id]!()
    const text = `upstream said: ${key} (request 42)`
    const masked = maskSecrets(text)
    expectMasked(masked, [key])
    expect(masked).toContain(MASK)
    expect(masked.startsWith('upstream said: ')).toBe(true)
    expect(masked.endsWith(' (request 42)')).toBe(true)
    const m = createMasker()
    expectMasked(m.text(text), [key])
    expectMasked(JSON.stringify(maskValue({ note: text, [key]: 1 })), [key])
    expectMasked(m.json({ body: { error: text } })!, [key])
    expectMasked(maskSecret(key), [key])
  })

  it('masks client keys of the current shape, with a bad checksum too (hiding one costs nothing)', () => {
    const key = fakeChecksummedClientKey()
    expect(maskSecrets(`key ${key} end`)).toBe('key gate_live_**** end')
    for (const lookAlike of clientKeyLookAlikes()) expect(maskSecrets(lookAlike)).toBe('gate_live_****')
  })

  it('leaves look-alikes readable: words with a key-like start, ids, digests, masked values, keys inside longer tokens', () => {
    const readable = [
      'Token expired for key_3f9a12bc; model claude-sonnet-4',
      'pip install sk-learn-is-not-scikit-learn',
      'task-manager-service-v2 and risk_live_limits and desk-test-suite',
      'gsk_short hf_tiny AIzaShort ya29.x npm_short',
      'sk-ant-**** gate_live_**** AKIA**** ghp_**** Bearer ****',
      randomBytes(32).toString('hex'),
      '0f8fad5b-d9cb-469f-a165-70867728950e',
      `base64blob${FAKE_KEYS['aws-access-key-id']!()}`,
      'SKILL: skipped, SK8 board',
    ]
    for (const text of readable) expect(maskSecrets(text)).toBe(text)
  })
})

describe('the masker on hostile input', () => {
  // A megabyte of one rule's prefix, repeated: every position is a candidate. The test asserts that
  // masking finishes and still finds the real key after it, not how long it takes.
  const prefixes = [...new Set(SECRET_RULES.map((r) => prefixOf(FAKE_KEYS[r.id]!())).filter((p) => p.length > 0))]

  it.each(prefixes.map((p) => [p]))('finishes on a 1 MB run of %j and masks the key after it', (prefix) => {
    const run = prefix.repeat(Math.ceil(MIB / prefix.length)).slice(0, MIB)
    const key = FAKE_KEYS['anthropic-api-key']!()
    const out = maskSecrets(`${run}\n${key}\n`)
    expect(out.includes(secretPart(key))).toBe(false)
  })
})
