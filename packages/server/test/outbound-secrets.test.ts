import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expectMasked, FAKE_KEYS } from '@gatehouse/testing'
import { openaiBody, startHarness, withTenantEndUser, type Harness } from './helpers'

/**
 * Outbound secret detection through the whole gateway: a prompt carrying a credential is blocked,
 * masked or logged per secret_detection, per provider and per client key; the provider never sees
 * a blocked one, and no sink (answer, event, audit log, application log) ever holds the secret.
 */

const chat = (h: Harness, key: string, content: string): Promise<Response> =>
  fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(openaiBody({ messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content }] })),
  })

async function everything(h: Harness, answer: string): Promise<string> {
  await h.gateway.audit?.flush()
  const audit = readFileSync(h.gateway.config.logging.audit.file, 'utf8')
  return [answer, JSON.stringify(h.events), h.logs.join('\n'), audit].join('\n')
}

describe('outbound secret detection in the gateway, with the defaults', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness()
  })
  afterAll(() => h.close())
  beforeEach(() => h.upstream.reset())

  it('blocks a private key in a prompt: the provider-shaped 400 names the rule and the JSON path; nothing reaches the provider or any sink', async () => {
    const secret = FAKE_KEYS['private-key']!()
    const r = await chat(h, h.key, `my key:\n${secret}\nwhy does it fail?`)
    const text = await r.text()
    expect(r.status).toBe(400)
    const body = JSON.parse(text) as { error: { message: string; type: string; param?: string } }
    expect(body.error.type).toBe('invalid_request_error')
    expect(body.error.message).toContain('private-key')
    expect(body.error.message).toContain('$.messages[1].content')
    expect(h.upstream.requests).toHaveLength(0)
    expect(h.events).toEqual(expect.arrayContaining([expect.objectContaining({ event_type: 'security_violation', result: 'secret_detected', user_id: h.keyId })]))
    expectMasked(await everything(h, text), [secret])
  })

  it('forwards a GitHub token unchanged (log), with a secret_forwarded event that holds no part of it', async () => {
    const secret = FAKE_KEYS['github-token']!()
    const r = await chat(h, h.key, `token ${secret} leaks here`)
    expect(r.status).toBe(200)
    expect(h.upstream.last!.body.toString()).toContain(secret)
    const event = h.events.filter((e) => e.result === 'secret_forwarded').pop()
    expect(event?.details).toEqual(expect.objectContaining({ count: 1, secrets: [{ rule: 'github-token', json_path: '$.messages[1].content', action: 'log' }] }))
    expectMasked(await everything(h, await r.text()), [secret])
  })

  it('passes look-alikes untouched, with no event', async () => {
    const before = h.events.length
    const r = await chat(h, h.key, `placeholders: sk-ant-api03-${'x'.repeat(20)} and AKIA${'EXAMPLE'.repeat(2)}12 and ghp_short`)
    expect(r.status).toBe(200)
    expect(h.events.slice(before).filter((e) => String(e.result).startsWith('secret_'))).toEqual([])
  })
})

describe('outbound secret detection in the gateway, as configured per provider and per key', () => {
  let h: Harness
  let strictKey: string
  let strictId: string
  const keep = mkdtempSync(join(tmpdir(), 'gh-secrets-'))
  beforeAll(async () => {
    // A key's own policy names its id: the key is made first, then the gateway starts with the policy
    // (the same auth directory, so the same keys).
    const first = await startHarness((c) => {
      c.auth.dir = join(keep, 'auths')
    })
    const strict = await first.gateway.keyStore.create({ name: 'strict' })
    strictKey = strict.key
    strictId = strict.record.id
    await first.close()
    h = await startHarness((c) => {
      c.auth.dir = join(keep, 'auths')
      c.secret_detection = { enabled: true, providers: { openai: { default: 'mask' } }, keys: { [strictId]: { default: 'block' } } }
    })
  }, 60_000)
  afterAll(async () => {
    await h.close()
    rmSync(keep, { recursive: true, force: true })
  })
  beforeEach(() => h.upstream.reset())

  it('masks a GitHub token for OpenAI: the provider gets valid JSON, byte-identical apart from the marker (and the end-user identifier of the key), with the right Content-Length', async () => {
    const secret = FAKE_KEYS['github-token']!()
    const content = `token ${secret} leaks here`
    const r = await chat(h, h.key, content)
    expect(r.status).toBe(200)
    const got = h.upstream.last!
    const sent = JSON.stringify(openaiBody({ messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content }] }))
    expect(got.body.toString()).toBe(withTenantEndUser(sent.replace(secret, '[REDACTED:github-token]'), h.keyId, 'openai'))
    expect(Number(got.headers['content-length'])).toBe(got.body.length)
    expect(JSON.parse(got.body.toString())).toBeTruthy()
    expectMasked(await everything(h, await r.text()), [secret])
  })

  it("applies a key's own policy over the provider's: the strict key's prompt is blocked, the other key's masked", async () => {
    const secret = FAKE_KEYS['github-token']!()
    const blocked = await chat(h, strictKey, `token ${secret}`)
    expect(blocked.status).toBe(400)
    expect(h.upstream.requests).toHaveLength(0)
    expect(h.events).toEqual(expect.arrayContaining([expect.objectContaining({ result: 'secret_detected', user_id: strictId })]))
    // The other tenant, at the same moment, is unaffected by the strict key's refusal.
    expect((await chat(h, h.key, `token ${secret}`)).status).toBe(200)
    expect(h.upstream.requests).toHaveLength(1)
    expect(h.upstream.last!.body.toString()).not.toContain(secret)
  })
})
