import express from 'express'
import { gatehouseLocals } from '@gatehouse/core'
import { FAKE_KEYS, expectMasked } from '@gatehouse/testing'
import { requestGuard, type SecretPolicy } from '@gatehouse/request-guard'
import { GEMINI_PATH, claude, gemini, postJson } from './helpers'
import { PROMPT_PATH, prompt, tenantFromHeader, useSecretGateway } from './secrets-helpers'

const OPENAI_PATH = '/v1/chat/completions'
const CLAUDE_PATH = '/v1/messages'

describe('outbound secret detection: per-provider overrides', () => {
  const gw = useSecretGateway({
    secrets: { providers: { claude: { default: 'block' }, gemini: { rules: { 'private-key': 'mask' } } } },
  })

  it('blocks a logged rule for the provider that says so, in its error shape', async () => {
    const key = FAKE_KEYS['github-token']!()
    const blocked = await postJson(
      gw.url,
      CLAUDE_PATH,
      claude({ messages: [{ role: 'user', content: `token ${key}` }] }),
    )
    expect(blocked.status).toBe(400)
    expect(blocked.json).toEqual({
      type: 'error',
      error: { type: 'invalid_request_error', message: expect.stringContaining('github-token') },
    })
    expect(blocked.json.error.message).toContain('$.messages[0].content')
    const logged = await postJson(gw.url, OPENAI_PATH, prompt(`token ${key}`))
    expect(logged.status).toBe(200)
    expect(gw.events.map((e) => [e.provider, e.result])).toEqual([
      ['claude', 'secret_detected'],
      ['openai', 'secret_forwarded'],
    ])
    expectMasked(blocked.text + JSON.stringify(gw.events), [key])
  })

  it('masks a rule that is blocked by default, for that provider only', async () => {
    const key = FAKE_KEYS['private-key']!()
    const body = gemini({ contents: [{ role: 'user', parts: [{ text: key }] }] })
    const res = await postJson(gw.url, GEMINI_PATH, body)
    expect(res.status).toBe(200)
    expect(gw.upstream.last!.json).toEqual(
      gemini({ contents: [{ role: 'user', parts: [{ text: '[REDACTED:private-key]' }] }] }),
    )
    expect(gw.events[0]).toMatchObject({
      provider: 'gemini',
      result: 'secret_masked',
      details: { secrets: [{ json_path: '$.contents[0].parts[0].text' }] },
    })
    expect((await postJson(gw.url, OPENAI_PATH, prompt(key))).status).toBe(400)
  })
})

const POLICIES: Record<string, SecretPolicy | false> = {
  key_strict: { default: 'block' },
  key_masking: { rules: { 'github-token': 'mask' } },
  key_trusted: false,
}

describe('outbound secret detection: the per-request policy hook (one policy per client key)', () => {
  const gw = useSecretGateway(
    { secrets: { policy: (_req, res) => POLICIES[gatehouseLocals(res).clientKeyId ?? ''] } },
    [tenantFromHeader],
  )

  it("a tenant blocked for a secret does not affect another tenant's requests", async () => {
    const key = FAKE_KEYS['github-token']!()
    const strict = await postJson(gw.url, OPENAI_PATH, prompt(`token ${key}`), { 'x-tenant': 'key_strict' })
    expect(strict.status).toBe(400)
    const other = FAKE_KEYS['github-token']!()
    const results = await Promise.all([
      postJson(gw.url, OPENAI_PATH, prompt(`token ${other}`), { 'x-tenant': 'key_masking' }),
      postJson(gw.url, OPENAI_PATH, prompt(`token ${other}`), { 'x-tenant': 'key_other' }),
      postJson(gw.url, OPENAI_PATH, prompt(`token ${key}`), { 'x-tenant': 'key_strict' }),
    ])
    expect(results.map((r) => r.status)).toEqual([200, 200, 400])
    const bodies = gw.upstream.requests
      .map((r) => (r.json as { messages: { content: { text: string }[] }[] }).messages[1]!.content[0]!.text)
      .sort()
    expect(bodies).toEqual(['token [REDACTED:github-token]', `token ${other}`])
    const byUser = gw.events.map((e) => [e.user_id, e.result]).sort()
    expect(byUser).toEqual([
      ['key_masking', 'secret_masked'],
      ['key_other', 'secret_forwarded'],
      ['key_strict', 'secret_detected'],
      ['key_strict', 'secret_detected'],
    ])
  })

  it('false skips detection for the request; the built-in blocks still hold for the others', async () => {
    const key = FAKE_KEYS['aws-access-key-id']!()
    expect((await postJson(gw.url, OPENAI_PATH, prompt(key), { 'x-tenant': 'key_trusted' })).status).toBe(200)
    expect((await postJson(gw.url, OPENAI_PATH, prompt(key), { 'x-tenant': 'key_other' })).status).toBe(400)
    expect(gw.events.map((e) => e.user_id)).toEqual(['key_other'])
  })
})

describe('outbound secret detection: a policy hook that fails closes', () => {
  it.each<[string, () => unknown]>([
    [
      'throws',
      () => {
        throw new Error('policy store down')
      },
    ],
    ['returns an unknown action', () => ({ default: 'drop' })],
    ['returns an unknown rule', () => ({ rules: { 'aws-key': 'log' } })],
    ['returns a string', () => 'block'],
  ])('%s: 500 GH_RG_SECRET_POLICY, nothing forwarded', async (_name, policy) => {
    const errors: string[] = []
    const app = express()
    app.use(
      requestGuard({
        secrets: { policy: policy as () => undefined },
        logger: { error: (m) => void errors.push(m), warn: () => {}, info: () => {}, debug: () => {} },
      }),
    )
    app.use((_req, res) => res.json({ forwarded: true }))
    app.use(((err, _req, res, _next) =>
      res.status(err.statusCode).json({ code: err.code })) as express.ErrorRequestHandler)
    const server = app.listen(0, '127.0.0.1')
    await new Promise((r) => server.once('listening', r))
    try {
      const { port } = server.address() as { port: number }
      const res = await postJson(`http://127.0.0.1:${port}`, OPENAI_PATH, prompt('no secret here'))
      expect(res.status).toBe(500)
      expect(res.json).toEqual({ code: 'GH_RG_SECRET_POLICY' })
      expect(errors).toEqual([expect.stringContaining('secrets.policy failed')])
    } finally {
      await new Promise((r) => server.close(r))
    }
  })
})

describe('outbound secret detection: big and hostile bodies', () => {
  const gw = useSecretGateway({ maxDepth: 10_000, secrets: { rules: { 'github-token': 'mask' } } })

  it('finds a key near the end of a multi-MB prompt', async () => {
    const key = FAKE_KEYS['aws-access-key-id']!()
    const filler = 'The quick brown fox jumps over the lazy dog. '.repeat(80_000)
    const res = await postJson(gw.url, OPENAI_PATH, prompt(`${filler}creds: ${key} end`))
    expect(res.status).toBe(400)
    expect(res.json.error.message).toContain(`${PROMPT_PATH}: holds a credential (aws-access-key-id)`)
  })

  it.each<[string, string]>([
    ['a 1 MB run of one prefix', 'sk-ant-'.repeat(150_000)],
    ['a 1 MB run of a private key header', '-----BEGIN PRIVATE KEY-----\\n'.repeat(35_000)],
    ['a 1 MB run of AWS key ids', 'AKIA'.repeat(260_000)],
    [
      'a 1 MB run of masked keys',
      Array.from({ length: 25_000 }, () => FAKE_KEYS['github-token']!()).join(' '),
    ],
  ])('%s is answered', async (_name, text) => {
    const res = await postJson(gw.url, OPENAI_PATH, prompt(text))
    expect(res.status).toBe(200)
    expect(gw.upstream.requests).toHaveLength(1)
  })

  it('names a key deep in nested JSON with a bounded path', async () => {
    const key = FAKE_KEYS['private-key']!()
    const depth = 5_000
    const nested = `${'['.repeat(depth)}${JSON.stringify(key)}${']'.repeat(depth)}`
    const text = JSON.stringify(prompt('hi')).replace(/}$/, `,"metadata_x":${nested}}`)
    const res = await postJson(gw.url, OPENAI_PATH, text)
    expect(res.status).toBe(400)
    expect(res.json.error.message).toMatch(/^\$\.\?(\[0\]){11}…: holds a credential \(private-key\)/)
  })
})

describe('outbound secret detection behind express.json()', () => {
  const gw = useSecretGateway({ secrets: { default: 'mask' } }, [express.json({ limit: '1mb' })])

  it('masks the re-serialized body and the parsed req.body alike', async () => {
    const key = FAKE_KEYS['slack-token']!()
    const res = await postJson(gw.url, OPENAI_PATH, prompt(`hook ${key}`))
    expect(res.status).toBe(200)
    expect(gw.upstream.last!.body.toString('utf8')).toBe(
      JSON.stringify(prompt('hook [REDACTED:slack-token]')),
    )
    expect(gw.events[0]).toMatchObject({ result: 'secret_masked' })
  })
})
