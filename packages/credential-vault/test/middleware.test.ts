import express, { type RequestHandler } from 'express'
import { createProxyMiddleware, type Options } from 'http-proxy-middleware'
import request from 'supertest'
import { gatehouseLocals } from '@gatehouse/core'
import { MockUpstream, collectEvents, createTestApp, fakeClock, type FakeClock } from '@gatehouse/testing'
import {
  applyUpstreamCredential,
  createCredentialVault,
  credentialInjection,
  reportUpstreamStatus,
  upstreamCredentialOf,
  type CredentialInjectionOptions,
  type CredentialVault,
} from '@gatehouse/credential-vault'
import { anthropicKey, cleanupDirs, expectNoSecrets, geminiKey, newKey, oauthToken, openaiKey, sleep, tmpDir } from './helpers'

let upstream: MockUpstream
const vaults: CredentialVault[] = []
beforeAll(async () => {
  upstream = await MockUpstream.start()
})
let clock: FakeClock | undefined
afterEach(async () => {
  clock?.restore()
  upstream.reset()
  await Promise.all(vaults.splice(0).map((v) => v.shutdown()))
})
afterAll(async () => {
  await upstream.close()
  cleanupDirs()
})

function newVault(extra: Partial<Parameters<typeof createCredentialVault>[0]> = {}) {
  const { events, onEvent } = collectEvents()
  const vault = createCredentialVault({ dir: tmpDir(), encryption: { key: newKey() }, watch: false, rescanInterval: 0, onEvent, ...extra })
  vaults.push(vault)
  return { vault, events }
}

/** The gateway under test: injection, then http-proxy-middleware v3 to the mock provider. */
function gateway(vault: CredentialVault, injection: Partial<CredentialInjectionOptions> = {}, on: Options['on'] = {}, before: RequestHandler[] = []) {
  const app = express()
  for (const mw of before) app.use(mw)
  app.use(credentialInjection({ vault, ...injection }))
  app.use(createProxyMiddleware({ target: upstream.url, changeOrigin: true, on }))
  return app
}

const CLIENT_HEADERS = {
  authorization: 'Bearer gate_live_clientkeyclientkeyclientkeyclientkey0123456',
  'x-api-key': 'gate_live_clientkeyclientkeyclientkeyclientkey0123456',
  'x-goog-api-key': 'client-google-key-0000000000000000',
  cookie: 'session=abc',
}
const claudeBody = { model: 'claude-sonnet-4', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }
const openaiBody = { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }
const geminiBody = { contents: [{ parts: [{ text: 'hi' }] }] }

describe('credential injection through http-proxy-middleware', () => {
  it.each<[string, 'claude' | 'openai' | 'gemini', 'api_key' | 'oauth', string, object, (secret: string) => Record<string, string | undefined>]>([
    ['an Anthropic API key', 'claude', 'api_key', '/v1/messages', claudeBody, (s) => ({ 'x-api-key': s, authorization: undefined, 'anthropic-beta': undefined })],
    ['an Anthropic OAuth token', 'claude', 'oauth', '/v1/messages', claudeBody, (s) => ({ authorization: `Bearer ${s}`, 'anthropic-beta': 'oauth-2025-04-20', 'x-api-key': undefined })],
    ['an OpenAI key', 'openai', 'api_key', '/v1/chat/completions', openaiBody, (s) => ({ authorization: `Bearer ${s}`, 'x-api-key': undefined })],
    ['a Gemini key', 'gemini', 'api_key', '/v1beta/models/gemini-2.0-flash:generateContent', geminiBody, (s) => ({ 'x-goog-api-key': s, authorization: undefined })],
  ])('sends %s upstream and never the client credentials', async (_name, provider, type, path, body, expected) => {
    const { vault, events } = newVault()
    const secret = provider === 'claude' ? (type === 'oauth' ? oauthToken() : anthropicKey()) : provider === 'openai' ? openaiKey() : geminiKey()
    const { id } = await vault.add(type === 'oauth' ? { provider, type, oauth: { access_token: secret } } : { provider, type, token: secret })
    const res = await request(gateway(vault)).post(path).set(CLIENT_HEADERS).send(body)
    expect(res.status).toBe(200)
    const seen = upstream.last!.headers
    for (const [name, value] of Object.entries(expected(secret))) expect(seen[name]).toBe(value)
    expect(seen.cookie).toBeUndefined()
    expect(JSON.stringify(upstream.last!.headers)).not.toContain('gate_live_')
    expect(JSON.stringify(upstream.last!.headers)).not.toContain('client-google-key')
    expectNoSecrets([res.headers, res.text, events], [secret])
    expect(events.find((e) => e.result === 'granted')).toMatchObject({
      event_type: 'credential_access',
      provider,
      details: { credential_id: id, credential_type: type, source: 'vault' },
    })
  })

  it('emits the granted event once per credential and interval with grantEventInterval', async () => {
    const { vault, events } = newVault()
    await vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    const app = gateway(vault, { grantEventInterval: 60_000 })
    for (let i = 0; i < 4; i++) await request(app).post('/v1/chat/completions').send(openaiBody).expect(200)
    expect(events.filter((e) => e.result === 'granted')).toHaveLength(1)
  })

  it("keeps the client's own anthropic-beta flags and adds the OAuth one once", async () => {
    const { vault } = newVault()
    await vault.add({ provider: 'claude', type: 'oauth', oauth: { access_token: oauthToken() } })
    await request(gateway(vault)).post('/v1/messages').set('anthropic-beta', 'prompt-caching-2024-07-31, oauth-2025-04-20').send(claudeBody).expect(200)
    expect(upstream.last!.headers['anthropic-beta']).toBe('prompt-caching-2024-07-31,oauth-2025-04-20')
  })

  it('applies the headers in on.proxyReq when setRequestHeaders is off, leaving none in req.headers', async () => {
    const { vault } = newVault()
    const secret = anthropicKey()
    await vault.add({ provider: 'claude', type: 'api_key', token: secret })
    let seenInReq: string | undefined = 'unset'
    const peek: RequestHandler = (req, _res, next) => {
      seenInReq = req.headers['x-api-key'] as string | undefined
      next()
    }
    const app = express()
    app.use(credentialInjection({ vault, setRequestHeaders: false }))
    app.use(peek)
    app.use(createProxyMiddleware({ target: upstream.url, changeOrigin: true, on: { proxyReq: (proxyReq, _req, res) => void applyUpstreamCredential(proxyReq, res) } }))
    await request(app).post('/v1/messages').set(CLIENT_HEADERS).send(claudeBody).expect(200)
    expect(seenInReq).toBeUndefined()
    expect(upstream.last!.headers['x-api-key']).toBe(secret)
    expect(upstream.last!.headers.authorization).toBeUndefined()

    // Without the hook nothing secret reaches the upstream: the headers were only in the symbol slot.
    upstream.reset()
    await request(gateway(vault, { setRequestHeaders: false })).post('/v1/messages').set(CLIENT_HEADERS).send(claudeBody)
    expect(upstream.last!.headers['x-api-key']).toBeUndefined()
  })

  it('reports the upstream status from on.proxyRes when autoReport is off', async () => {
    const { vault } = newVault()
    const { id } = await vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    const app = gateway(vault, { autoReport: false }, { proxyRes: (proxyRes, _req, res) => void reportUpstreamStatus(res, proxyRes.statusCode ?? 0) })
    upstream.behave({ failStatus: 403 })
    await request(app).post('/v1/chat/completions').send(openaiBody).expect(403)
    await sleep(10)
    expect(vault.get(id)?.status).toBe('active')
  })

  it('uses the provider an earlier layer resolved (gatehouseLocals(res).provider)', async () => {
    const { vault } = newVault()
    const key = geminiKey()
    await vault.add({ provider: 'gemini', type: 'api_key', token: key })
    const setProvider: RequestHandler = (_req, res, next) => {
      gatehouseLocals(res).provider = 'gemini'
      next()
    }
    // The path alone would say openai; the resolved provider wins.
    await request(gateway(vault, {}, {}, [setProvider])).post('/v1/chat/completions').send(openaiBody).expect(200)
    expect(upstream.last!.headers['x-goog-api-key']).toBe(key)
    expect(upstream.last!.headers.authorization).toBeUndefined()
  })
})

describe('credential injection: the pool behind it (rotation, rejection, 503)', () => {
  it('rotates across the pool (round robin), static key included', async () => {
    const keys = [openaiKey(), openaiKey()]
    const staticKey = openaiKey()
    const { vault } = newVault({ staticCredentials: { openai: staticKey } })
    for (const token of keys) await vault.add({ provider: 'openai', type: 'api_key', token })
    const app = gateway(vault)
    for (let i = 0; i < 6; i++) await request(app).post('/v1/chat/completions').send(openaiBody).expect(200)
    const used = upstream.requests.map((r) => r.headers.authorization)
    for (const k of [...keys, staticKey]) expect(used.filter((u) => u === `Bearer ${k}`)).toHaveLength(2)
  })

  it('a 401 or 403 reported alone never takes a credential out of service', async () => {
    const { vault } = newVault({ unhealthyCooldown: '60s' })
    const { id } = await vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    await vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    const app = gateway(vault)
    for (const status of [401, 403, 401, 403]) {
      upstream.behave({ failStatus: status })
      await request(app).post('/v1/chat/completions').send(openaiBody).expect(status)
    }
    upstream.reset()
    expect(vault.get(id)?.status).toBe('active')
    expect(vault.status().credentials.unhealthy).toBe(0)
  })

  it('skips a credential rejected with proof and brings it back after the cool-down', async () => {
    // Only Date is fake: the requests below are real round trips to the mock upstream.
    clock = fakeClock({ timers: false })
    const [bad, good] = [openaiKey(), openaiKey()]
    const { vault, events } = newVault({ unhealthyCooldown: '60s' })
    const badId = (await vault.add({ provider: 'openai', type: 'api_key', token: bad })).id
    await vault.add({ provider: 'openai', type: 'api_key', token: good })
    const app = gateway(vault)
    // Find the turn of the bad key, and make the upstream refuse it.
    while ((await vault.acquire('openai'))?.credentialId === badId) {
      /* advance the rotation until the next pick is the bad key */
    }
    const lease = await vault.acquire('openai')
    expect(lease?.credentialId).toBe(badId)
    lease!.reject('invalid_credential')
    lease!.reject('invalid_credential') // the first call counts
    expect(vault.get(badId)).toMatchObject({ status: 'unhealthy', unhealthy_reason: 'rejected:invalid_credential' })
    for (let i = 0; i < 4; i++) await request(app).post('/v1/chat/completions').send(openaiBody).expect(200)
    expect(new Set(upstream.requests.map((r) => r.headers.authorization))).toEqual(new Set([`Bearer ${good}`]))
    expect(events.filter((e) => e.result === 'rejected')).toEqual([
      expect.objectContaining({ event_type: 'credential_access', provider: 'openai', details: expect.objectContaining({ credential_id: badId, reason: 'invalid_credential', action: 'cooldown' }) }),
    ])
    // Skipped until the last millisecond of the cool-down, served again once it is over.
    await clock.advance(59_999)
    expect(vault.get(badId)?.status).toBe('unhealthy')
    await clock.advance(1)
    expect(vault.get(badId)?.status).toBe('active')
    upstream.reset()
    for (let i = 0; i < 2; i++) await request(app).post('/v1/chat/completions').send(openaiBody).expect(200)
    expect(upstream.requests.map((r) => r.headers.authorization)).toContain(`Bearer ${bad}`)
    expectNoSecrets(events, [bad, good])
  })

  it.each<['claude' | 'openai' | 'gemini', string, object, (b: Record<string, Record<string, unknown>>) => unknown]>([
    ['claude', '/v1/messages', claudeBody, () => ({ type: 'error', error: { type: 'overloaded_error', message: expect.stringContaining('"claude"') } })],
    ['openai', '/v1/chat/completions', openaiBody, () => ({ error: { message: expect.stringContaining('"openai"'), type: 'server_error', param: null, code: 'service_unavailable' } })],
    ['gemini', '/v1beta/models/gemini-2.0-flash:generateContent', geminiBody, () => ({ error: { code: 503, message: expect.stringContaining('"gemini"'), status: 'UNAVAILABLE' } })],
  ])('answers 503 in the %s shape naming the provider when no credential is available', async (provider, path, body, shape) => {
    const { vault, events } = newVault()
    const res = await request(gateway(vault)).post(path).set(CLIENT_HEADERS).send(body)
    expect(res.status).toBe(503)
    expect(res.headers['cache-control']).toBe('no-store')
    expect(res.body).toEqual(shape(res.body))
    expect(upstream.requests).toHaveLength(0)
    expect(events.find((e) => e.result === 'unavailable')).toMatchObject({
      event_type: 'credential_access',
      provider,
      details: { code: 'GH_VAULT_NO_CREDENTIAL' },
    })
    expect(res.text).not.toContain('gate_live_')
  })

  it("keeps a provider's last usable credential in service when it is rejected, loudly", async () => {
    const { vault, events } = newVault({ unhealthyCooldown: '30s' })
    const first = (await vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })).id
    const second = (await vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })).id
    vault.reject(first, 'invalid_credential')
    vault.reject(second, 'invalid_credential')
    expect(vault.get(first)?.status).toBe('unhealthy')
    expect(vault.get(second)?.status).toBe('active')
    expect(vault.status().providers.openai).toEqual({ usable: 1, kept_last_rejections: 1 })
    expect(events.filter((e) => e.result === 'rejected').map((e) => e.details?.action)).toEqual(['cooldown', 'kept_last_credential'])
    await request(gateway(vault)).post('/v1/chat/completions').send(openaiBody).expect(200)
  })
})

describe('credential injection in a plain Express app', () => {
  it('exposes the credential id in res.locals.gatehouse, never the secret', async () => {
    const { vault } = newVault()
    const secret = oauthToken()
    const { id } = await vault.add({ provider: 'claude', type: 'oauth', oauth: { access_token: secret } })
    const res = await request(createTestApp(credentialInjection({ vault }))).post('/claude/v1/messages').set(CLIENT_HEADERS).send(claudeBody)
    expect(res.status).toBe(200)
    expect(res.body.locals.credentialVault).toEqual({
      credentialId: id,
      provider: 'claude',
      type: 'oauth',
      source: 'vault',
      injectedHeaders: ['authorization', 'anthropic-beta'],
    })
    expectNoSecrets(res.text, [secret])
  })

  it('hands the chosen headers and the report hook to a proxy layer that sets headers itself', async () => {
    const { vault } = newVault({ unhealthyCooldown: '60s' })
    const secret = openaiKey()
    const { id } = await vault.add({ provider: 'openai', type: 'api_key', token: secret })
    const spare = await vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    while ((await vault.acquire('openai'))?.credentialId !== spare.id) {
      /* the next pick is `id` */
    }
    let seen: Readonly<Record<string, string>> | undefined
    const proxyLayer: RequestHandler = (_req, res) => {
      const credential = upstreamCredentialOf(res)
      seen = credential?.headers
      credential?.report(401)
      credential?.reject('invalid_credential')
      res.status(401).json({ error: { message: 'upstream said no' } })
    }
    const app = express()
    app.use(credentialInjection({ vault, setRequestHeaders: false, autoReport: false }))
    app.use(proxyLayer)
    await request(app).post('/v1/chat/completions').send(openaiBody).expect(401)
    expect(seen).toEqual({ authorization: `Bearer ${secret}` })
    expect(vault.get(id)?.status).toBe('unhealthy')
    const bare = express()
    bare.use((_req, res) => void res.json({ credential: upstreamCredentialOf(res) ?? null }))
    expect((await request(bare).get('/')).body).toEqual({ credential: null })
  })

  it('lets requests that are not for a provider through untouched', async () => {
    const { vault, events } = newVault()
    const res = await request(createTestApp(credentialInjection({ vault }))).get('/healthz').set('authorization', 'Bearer mgmt')
    expect(res.status).toBe(200)
    expect(res.body.locals?.credentialVault).toBeUndefined()
    expect(res.body.path).toBe('/healthz')
    expect(events.filter((e) => e.event_type === 'credential_access')).toEqual([])
  })

  it('strips extra configured headers too', async () => {
    const { vault } = newVault()
    await vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    const app = gateway(vault, { stripHeaders: ['X-Client-Secret'] })
    await request(app).post('/v1/chat/completions').set('x-client-secret', 'hush').send(openaiBody).expect(200)
    expect(upstream.last!.headers['x-client-secret']).toBeUndefined()
  })
})
