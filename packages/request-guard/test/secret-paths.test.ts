import { SecretMatcher } from '@gatehouse/core'
import { FAKE_KEYS, expectMasked } from '@gatehouse/testing'
import { locate } from '../src/secret-paths'
import { inspectSecrets } from '../src/secrets'
import { resolveSecrets } from '../src/secrets-options'

const at = (text: string, needle: string): number => text.indexOf(needle)
const all = (): boolean => true

describe('locate: the JSON path of a position', () => {
  it('names strings in objects and arrays, keys included, escapes and whitespace skipped', () => {
    const text =
      '{ "messages" : [ {"role":"user"}, {"content":[ 1, true, {"text":"a \\" KEY"} ]} ], "x\\u0041": "KEY2" }'
    const [inKey, inText, inUnknown] = locate(
      text,
      [at(text, 'role'), at(text, 'KEY"'), at(text, 'KEY2')],
      all,
    )
    expect(inText).toEqual({ path: '$.messages[1].content[2].text', stringEnd: at(text, 'KEY"') + 3 })
    expect(inKey!.path).toBe('$.messages[0].role')
    expect(inUnknown!.path).toBe('$.?')
  })

  it('gives $ outside any string and for text that is not JSON', () => {
    expect(locate('{"a": 12345}', [7], all)).toEqual([{ path: '$', stringEnd: -1 }])
    expect(locate('not json at all', [4], all)).toEqual([{ path: '$', stringEnd: -1 }])
    expect(locate('{"a":"unterminated', [8], all)).toEqual([{ path: '$', stringEnd: -1 }])
  })

  it('keeps twelve levels of a deep path and marks the rest', () => {
    const text = `{"a":${'['.repeat(100_000)}"x"${']'.repeat(100_000)}}`
    const [deep] = locate(text, [text.indexOf('x')], all)
    expect(deep!.path).toBe(`$.?${'[0]'.repeat(11)}…`)
  })

  it('computes paths only where asked', () => {
    const text = '{"a":"x","b":"y"}'
    expect(locate(text, [6, 14], (i) => i === 1).map((l) => l.path)).toEqual(['', '$.?'])
  })
})

describe('inspectSecrets', () => {
  const matcher = new SecretMatcher()
  const actions = resolveSecrets('@gatehouse/request-guard', {
    default: 'mask',
    rules: { 'private-key': 'mask' },
  })!.providers.openai

  it('masks every private key of a string up to its END line, in one pass over many keys', () => {
    const keys = Array.from({ length: 200 }, () => FAKE_KEYS['private-key']!())
    const text = JSON.stringify({ text: keys.join('\nnext:\n') })
    const found = inspectSecrets(matcher, text, actions)!
    expect(found.count).toBe(200)
    expect(JSON.parse(found.masked!)).toEqual({
      text: Array(200).fill('[REDACTED:private-key]').join('\nnext:\n'),
    })
    expectMasked(found.masked!, keys)
  })

  it('masks a private key with no END line to the end of its string only', () => {
    const key = FAKE_KEYS['private-key']!().split('-----END')[0]!
    const text = JSON.stringify({ a: `pem: ${key}`, b: 'kept' })
    expect(JSON.parse(inspectSecrets(matcher, text, actions)!.masked!)).toEqual({
      a: 'pem: [REDACTED:private-key]',
      b: 'kept',
    })
  })

  it('blocks a credential it could not mask inside its string', () => {
    const key = FAKE_KEYS['github-token']!()
    const found = inspectSecrets(matcher, `token ${key}`, actions)!
    expect(found.action).toBe('block')
    expect(found.blocked).toEqual({ rule: 'github-token', json_path: '$', action: 'block' })
  })
})
