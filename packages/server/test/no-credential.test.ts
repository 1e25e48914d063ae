import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { ensureBuilt, runCli, startCli } from './cli-helpers'
import { anthropicBody, fakeKey, startHarness, type Harness } from './helpers'

// A provider served with no credential (no providers.<name>.api_key, nothing in the vault) is not
// ready, and its requests get a 403 naming the setting, which SDKs do not retry.

describe('a provider without a credential', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness((c) => {
      delete c.providers.openai!.api_key
    })
  })
  afterAll(() => h.close())

  it('makes /readyz answer 503 naming it', async () => {
    const res = await fetch(`${h.url}/readyz`)
    expect(res.status).toBe(503)
    expect(await res.json()).toEqual({ status: 'not ready', providers_without_credential: ['openai'] })
  })

  it('gets its requests a 403 in the provider shape naming the setting, not retried by the SDK, nothing sent upstream', async () => {
    const n = h.events.length
    const client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: h.key, maxRetries: 2 })
    const e = (await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).catch((x: unknown) => x)) as InstanceType<typeof OpenAI.APIError>
    expect(e).toBeInstanceOf(OpenAI.PermissionDeniedError)
    expect(e.status).toBe(403)
    expect(e.error).toEqual({
      message: expect.stringContaining('providers.openai.api_key (or the OPENAI_API_KEY environment variable)'),
      type: 'invalid_request_error',
      param: null,
      code: 'forbidden',
    })
    const events = h.events.slice(n).filter((ev) => ev.event_type === 'credential_access')
    // One request: the SDK did not retry.
    expect(events).toEqual([expect.objectContaining({ provider: 'openai', result: 'not_configured', user_id: h.keyId, details: { setting: 'providers.openai.api_key' } })])
    expect(h.upstream.requests).toHaveLength(0)
    for (const secret of [h.key, h.providerKeys.claude, h.providerKeys.gemini]) expect(JSON.stringify(e.error)).not.toContain(secret)
  })

  it('leaves the other providers served', async () => {
    const res = await fetch(`${h.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': h.key, 'content-type': 'application/json' }, body: JSON.stringify(anthropicBody()) })
    expect(res.status).toBe(200)
  })

  it('is ready once the vault holds a credential for it', async () => {
    const { id } = await h.gateway.vault.add({ provider: 'openai', type: 'api_key', token: fakeKey('sk-proj-', 60) })
    try {
      expect((await fetch(`${h.url}/readyz`)).status).toBe(200)
    } finally {
      await h.gateway.vault.delete(id)
    }
    expect((await fetch(`${h.url}/readyz`)).status).toBe(503)
  })
})

describe('gatehouse with only ANTHROPIC_API_KEY', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gh-nocred-'))
  const env = { GATEHOUSE_PORT: '0', GATEHOUSE_METRICS_PORT: '0', ANTHROPIC_API_KEY: fakeKey('sk-ant-api03-', 60) }
  beforeAll(() => ensureBuilt())
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('warns at start and doctor has a finding for each provider without one', async () => {
    const gw = await startCli([], { cwd: dir, env })
    try {
      const { stdout: out, stderr } = gw.output()
      const stdout = out + stderr
      for (const p of ['openai', 'gemini']) expect(stdout).toContain(`posture: Provider ${p} has no credential: its requests are refused with 403`)
      expect(stdout).not.toContain('Provider claude has no credential')
      expect(stdout).not.toContain(env.ANTHROPIC_API_KEY)
    } finally {
      gw.child.kill('SIGTERM')
      await gw.exited
    }
    const doctor = await runCli(['doctor'], { cwd: dir, env })
    expect(doctor.stdout).toMatch(/^MEDIUM +Provider openai has no credential in the config \(unless the vault in \.\/auths holds one\)/m)
    expect(doctor.stdout).toContain('fix: set providers.gemini.api_key (or the GEMINI_API_KEY environment variable)')
    expect(doctor.stdout).not.toContain('Provider claude has no credential')
  }, 30_000)
})
