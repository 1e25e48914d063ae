import { SECRET_RULE_IDS } from '@gatehouse/core'
import { FAKE_KEYS, expectMasked, rand, ALNUM } from '@gatehouse/testing'
import { DEFAULT_BLOCKED_RULES, type SecretAction } from '@gatehouse/request-guard'
import { postJson } from './helpers'
import { PROMPT_PATH, prompt, useSecretGateway, type SecretGateway } from './secrets-helpers'

const OPENAI_PATH = '/v1/chat/completions'
const everyRule = (action: SecretAction): Record<string, SecretAction> =>
  Object.fromEntries(SECRET_RULE_IDS.map((id) => [id, action]))

/** The prompt text a key is pasted in: a stack trace and a config line around it. */
const pasted = (key: string): string =>
  `Why does this fail?\nTraceback (most recent call last):\n  File "deploy.py", line 12\nconfig: ${key}\nValueError: bad region`

/** Everything a secret must not reach: the answer, the events and the log lines. */
function expectNothingLeaks(gw: SecretGateway, answer: string, keys: string[]): void {
  expectMasked(answer, keys)
  expectMasked(JSON.stringify(gw.events), keys)
  expect(gw.logger.calls.length).toBeGreaterThan(0)
  expectMasked(gw.logger.text(), keys)
}

/** What a masked key becomes in the prompt: the reported part replaced by the marker. */
function maskedForm(id: string, key: string): string {
  if (id === 'aws-secret-access-key') return key.replace(/=\s*\S+$/, `= [REDACTED:${id}]`)
  return `[REDACTED:${id}]`
}

describe('outbound secret detection: the defaults, rule by rule', () => {
  const gw = useSecretGateway()

  it.each(SECRET_RULE_IDS.map((id) => [id, DEFAULT_BLOCKED_RULES.includes(id) ? 'block' : 'log'] as const))(
    '%s: %s',
    async (id, action) => {
      const key = FAKE_KEYS[id]!()
      const sent = JSON.stringify(prompt(pasted(key)))
      const res = await postJson(gw.url, OPENAI_PATH, sent)
      expect(gw.events).toHaveLength(1)
      const event = gw.events[0]!
      expect(event).toMatchObject({
        event_type: 'security_violation',
        details: {
          code: 'GH_RG_SECRET_DETECTED',
          count: 1,
          secrets: [{ rule: id, json_path: PROMPT_PATH, action }],
        },
      })
      if (action === 'block') {
        expect(res.status).toBe(400)
        expect(res.json).toEqual({
          error: {
            message: expect.any(String),
            type: 'invalid_request_error',
            param: 'messages[1].content[0].text',
            code: 'invalid_value',
          },
        })
        expect(res.json.error.message).toContain(id)
        expect(res.json.error.message).toContain(PROMPT_PATH)
        expect(event).toMatchObject({ result: 'secret_detected', details: { status: 400 } })
        expect(gw.upstream.requests).toHaveLength(0)
      } else {
        expect(res.status).toBe(200)
        expect(event.result).toBe('secret_forwarded')
        expect(gw.upstream.last!.body.toString('utf8')).toBe(sent)
      }
      expectNothingLeaks(gw, res.text, [key])
    },
  )
})

describe('outbound secret detection: mask, rule by rule', () => {
  const gw = useSecretGateway({ secrets: { rules: everyRule('mask') } })

  it.each(SECRET_RULE_IDS)('%s: forwards valid JSON, byte-identical apart from the marker', async (id) => {
    const key = FAKE_KEYS[id]!()
    const sent = JSON.stringify(prompt(pasted(key)), null, 1)
    const res = await postJson(gw.url, OPENAI_PATH, sent)
    expect(res.status).toBe(200)
    const got = gw.upstream.last!
    const expected = sent.replace(JSON.stringify(key).slice(1, -1), maskedForm(id, key))
    expect(expected).not.toBe(sent)
    expect(got.body.toString('utf8')).toBe(expected)
    expect(got.headers['content-length']).toBe(String(Buffer.byteLength(expected)))
    expect(JSON.parse(got.body.toString('utf8'))).toEqual(prompt(pasted(maskedForm(id, key))))
    expectMasked(got.body.toString('utf8'), [key])
    expect(gw.events).toEqual([
      expect.objectContaining({
        result: 'secret_masked',
        details: expect.objectContaining({
          count: 1,
          secrets: [{ rule: id, json_path: PROMPT_PATH, action: 'mask' }],
        }),
      }),
    ])
    expectNothingLeaks(gw, res.text, [key])
  })

  it('masks every key of a body and writes its missing cap into the same bytes', async () => {
    const keys = [
      FAKE_KEYS['github-token']!(),
      FAKE_KEYS['aws-access-key-id']!(),
      FAKE_KEYS['private-key']!(),
    ]
    const sent = JSON.stringify(prompt(keys.join(' and '), { temperature: 0.5, max_completion_tokens: null }))
    const res = await postJson(gw.url, OPENAI_PATH, sent)
    expect(res.status).toBe(200)
    const got = gw.upstream.last!.body.toString('utf8')
    expect(JSON.parse(got)).toEqual(
      prompt('[REDACTED:github-token] and [REDACTED:aws-access-key-id] and [REDACTED:private-key]', {
        temperature: 0.5,
        max_completion_tokens: 4096,
      }),
    )
    expect(gw.events).toHaveLength(1)
    expect(gw.events[0]!.details).toMatchObject({ count: 3 })
    expectNothingLeaks(gw, got + res.text, keys)
  })
})

describe('outbound secret detection: look-alikes pass untouched', () => {
  const gw = useSecretGateway({ secrets: { default: 'block' } })

  it.each<[string, string]>([
    ['a placeholder', `sk-proj-${'x'.repeat(60)}`],
    ['a documentation key', `AKIA${'IOSFODNN7EXAMPLE'}`],
    ['filler', `ghp_${'abcdefghijklmnopqrstuvwxyz0123456789'}`],
    ['an AWS key id inside a longer token', `build${FAKE_KEYS['aws-access-key-id']!()}`],
    [
      'a key-shaped run inside a base64 blob',
      `${rand(ALNUM, 40)}/${FAKE_KEYS['aws-access-key-id']!()}${rand(ALNUM, 8)}`,
    ],
    ['a PEM header without a key', '-----BEGIN PRIVATE KEY----- goes first in the file'],
    ['a prefix alone', 'keys look like sk-ant-api03-… and AKIA…'],
  ])('%s', async (_name, text) => {
    const sent = JSON.stringify(prompt(text))
    const res = await postJson(gw.url, OPENAI_PATH, sent)
    expect(res.status).toBe(200)
    expect(gw.upstream.last!.body.toString('utf8')).toBe(sent)
    expect(gw.events).toEqual([])
  })
})

describe('outbound secret detection: several keys in one body', () => {
  const gw = useSecretGateway()

  it('reports them in one event, listing the first 20 with the total', async () => {
    const keys = Array.from({ length: 25 }, () => FAKE_KEYS['github-token']!())
    const body = prompt('see below', { messages: keys.map((k) => ({ role: 'user', content: `token ${k}` })) })
    const res = await postJson(gw.url, OPENAI_PATH, body)
    expect(res.status).toBe(200)
    expect(gw.events).toHaveLength(1)
    const details = gw.events[0]!.details as { count: number; secrets: { json_path: string }[] }
    expect(details.count).toBe(25)
    expect(details.secrets).toHaveLength(20)
    expect(details.secrets[19]).toEqual({
      rule: 'github-token',
      json_path: '$.messages[19].content',
      action: 'log',
    })
    expectNothingLeaks(gw, res.text, keys)
  })

  it('blocks a body where one key is blocked and names that one', async () => {
    const logged = FAKE_KEYS['npm-token']!()
    const blocked = FAKE_KEYS['aws-access-key-id']!()
    const res = await postJson(gw.url, OPENAI_PATH, prompt(`${logged} then ${blocked}`, { user: logged }))
    expect(res.status).toBe(400)
    expect(res.json.error.message).toMatch(/^\$\.messages\[1\]\.content\[0\]\.text: .*aws-access-key-id/)
    expect(gw.events[0]!.details).toMatchObject({
      count: 3,
      secrets: [
        { rule: 'npm-token', json_path: PROMPT_PATH, action: 'log' },
        { rule: 'aws-access-key-id', json_path: PROMPT_PATH, action: 'block' },
        { rule: 'npm-token', json_path: '$.user', action: 'log' },
      ],
    })
    expect(gw.upstream.requests).toHaveLength(0)
    expectNothingLeaks(gw, res.text, [logged, blocked])
  })
})
