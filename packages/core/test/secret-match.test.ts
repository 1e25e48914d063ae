import { FAKE_KEYS, secretPart } from '@gatehouse/testing'
import { SECRET_RULES, SecretMatcher } from '../src'

describe('SecretMatcher', () => {
  const matcher = new SecretMatcher()

  it.each(SECRET_RULES.map((r) => [r.id]))('finds a %s with its exact position', (id) => {
    const key = FAKE_KEYS[id]!()
    const text = `{"messages":[{"role":"user","content":"here: ${key.replace(/\n/g, '\\n')} thanks"}]}`
    const found = matcher.findAll(text)
    expect(found.map((m) => m.rule.id)).toEqual([id])
    const m = found[0]!
    expect(text.slice(m.start, m.end)).toBe(m.secret)
    expect(m.secret).toContain(secretPart(key).replace(/\n/g, '\\n').slice(0, 20))
    expect(m.secret.endsWith(m.body)).toBe(true)
  })

  it('passes look-alikes untouched: placeholders, filler, keys inside longer tokens, integrity strings', () => {
    const lookAlikes = [
      'sk-ant-api03-' + 'x'.repeat(95),
      `AKIA${'EXAMPLE'.repeat(2)}12`,
      `sk-proj-${Array(6).fill('placeholder').join('-')}`,
      'base64blob' + FAKE_KEYS['github-token']!(),
      'sha512-' + FAKE_KEYS['github-token']!().slice(4),
      'ghp_short',
    ]
    for (const text of lookAlikes) expect(matcher.findAll(text)).toEqual([])
  })

  it('finds several keys in one text in order, none overlapping', () => {
    const a = FAKE_KEYS['openai-user-key']!()
    const b = FAKE_KEYS['aws-access-key-id']!()
    const found = matcher.findAll(`${a} and ${b}`)
    expect(found.map((m) => m.rule.id)).toEqual(['openai-user-key', 'aws-access-key-id'])
    expect(found[0]!.end).toBeLessThanOrEqual(found[1]!.start)
  })

  it('matches only the rules it was built from', () => {
    const only = new SecretMatcher(SECRET_RULES.filter((r) => r.id === 'private-key'))
    expect(only.findAll(FAKE_KEYS['github-token']!())).toEqual([])
    expect(only.findAll(FAKE_KEYS['private-key']!()).map((m) => m.rule.id)).toEqual(['private-key'])
    expect(new SecretMatcher([]).findAll(FAKE_KEYS['private-key']!())).toEqual([])
  })
})
