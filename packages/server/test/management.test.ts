import { randomBytes } from 'node:crypto'
import type { SecurityEvent } from '@gatehouse/core'
import { httpRequest } from '@gatehouse/testing'
import { anthropicBody, startHarness, type Harness } from './helpers'

const mgmtKey = randomBytes(24).toString('base64url')

describe('management API', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness((c) => {
      c.management = { enabled: true, secret_key: mgmtKey, allow_remote: false }
    })
  })
  const changes = (): SecurityEvent[] => h.events.filter((e) => e.event_type === 'config_change' && e.user_id === 'management')
  afterAll(() => h.close())

  const api = (path: string, init: RequestInit = {}, key: string | null = mgmtKey): Promise<Response> =>
    fetch(`${h.url}/v0/management${path}`, {
      ...init,
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), 'content-type': 'application/json', ...(init.headers as object) },
    })

  it('creates a client key shown once, lists it without the secret, and revokes it', async () => {
    const created = await api('/keys', { method: 'POST', body: JSON.stringify({ name: 'ops', providers: ['claude'] }) })
    expect(created.status).toBe(201)
    const { id, key } = (await created.json()) as { id: string; key: string }
    expect(key).toMatch(/^gate_live_/)
    const ok = await fetch(`${h.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify(anthropicBody()) })
    expect(ok.status).toBe(200)
    const list = await (await api('/keys')).text()
    expect(list).toContain(id)
    expect(list).not.toContain(key)
    expect(list).not.toContain('"hash"')
    expect((await api(`/keys/${id}`, { method: 'DELETE' })).status).toBe(200)
    const after = await fetch(`${h.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify(anthropicBody()) })
    expect(after.status).toBe(401)
    expect((await api('/keys/key_00000000', { method: 'DELETE' })).status).toBe(404)
    expect(changes().map((e) => [e.result, e.details?.key_id])).toEqual([
      ['key_created', id],
      ['key_revoked', id],
    ])
    expect(JSON.stringify(h.events)).not.toContain(key)
  })

  it('creates a key with an endpoint scope, shows the scope, and refuses empty or unknown scopes with 400', async () => {
    const created = await api('/keys', { method: 'POST', body: JSON.stringify({ name: 'files', providers: ['openai'], endpoints: ['openai.chat', 'openai.files.list'] }) })
    expect(created.status).toBe(201)
    const { id, key } = (await created.json()) as { id: string; key: string }
    const listed = ((await (await api('/keys')).json()) as { keys: Array<{ id: string; providers?: string[]; endpoints?: string[] }> }).keys.find((k) => k.id === id)
    expect(listed).toMatchObject({ providers: ['openai'], endpoints: ['openai.chat', 'openai.files.list'] })
    const keysBefore = ((await (await api('/keys')).json()) as { keys: unknown[] }).keys.length
    const changesBefore = changes().length
    for (const [body, message] of [
      [{ name: 'x', providers: [] }, 'providers must not be empty'],
      [{ name: 'x', endpoints: [] }, 'endpoints must not be empty'],
      [{ name: 'x', endpoints: ['openai.file.list'] }, 'did you mean'],
      [{ name: 'x', providers: ['claude'], endpoints: ['openai.chat'] }, 'which providers does not include'],
    ] as const) {
      const res = await api('/keys', { method: 'POST', body: JSON.stringify(body) })
      expect(res.status).toBe(400)
      const text = await res.text()
      expect(text).toContain(message)
      expect(text).not.toContain('gate_live_')
    }
    // Nothing was created, and nothing claims it was.
    expect(((await (await api('/keys')).json()) as { keys: unknown[] }).keys).toHaveLength(keysBefore)
    expect(changes()).toHaveLength(changesBefore)
    expect((await api(`/keys/${id}`, { method: 'DELETE' })).status).toBe(200)
    expect(key).toMatch(/^gate_live_/)
  })

  it('creates a key with its own limits and models, which then hold: 429 naming the key, 403 for another model', async () => {
    const created = await api('/keys', { method: 'POST', body: JSON.stringify({ name: 'tight', models: ['gpt-4o-mini'], limits: { requests_per_minute: 1, providers: { openai: { concurrency: 2 } } } }) })
    expect(created.status).toBe(201)
    const { id, key } = (await created.json()) as { id: string; key: string }
    const listed = ((await (await api('/keys')).json()) as { keys: Array<{ id: string; limits?: unknown; models?: unknown }> }).keys.find((k) => k.id === id)
    expect(listed).toMatchObject({ models: ['gpt-4o-mini'], limits: { requests_per_minute: 1, providers: { openai: { concurrency: 2 } } } })
    const call = (model: string) =>
      fetch(`${h.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model, max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }) })
    const other = await call('gpt-4o')
    expect(other.status).toBe(403)
    expect(((await other.json()) as { error: { message: string } }).error.message).toBe('This API key may not use model "gpt-4o"')
    expect((await call('gpt-4o-mini')).status).toBe(200)
    const limited = await call('gpt-4o-mini')
    expect(limited.status).toBe(429)
    expect(((await limited.json()) as { error: { message: string } }).error.message).toContain('this API key: 1 requests per minute')
    for (const [body, message] of [
      [{ name: 'x', limits: { requests_per_minute: -1 } }, 'limits.requests_per_minute must be a whole number of at least 1'],
      [{ name: 'x', limits: { rpm: 5 } }, 'limits: unknown limit'],
      [{ name: 'x', models: [] }, 'models must not be empty'],
    ] as const) {
      const res = await api('/keys', { method: 'POST', body: JSON.stringify(body) })
      expect(res.status).toBe(400)
      expect(await res.text()).toContain(message)
    }
  })

  it('creates a key granted provider objects, which it alone may then use; refuses a malformed grant with 400', async () => {
    const created = await api('/keys', { method: 'POST', body: JSON.stringify({ name: 'team a', objects: ['vs_team_a'] }) })
    expect(created.status).toBe(201)
    const { id, key } = (await created.json()) as { id: string; key: string }
    const listed = ((await (await api('/keys')).json()) as { keys: Array<{ id: string; objects?: string[] }> }).keys.find((k) => k.id === id)
    expect(listed?.objects).toEqual(['vs_team_a'])
    const search = (k: string) =>
      fetch(`${h.url}/v1/responses`, { method: 'POST', headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', input: 'q', tools: [{ type: 'file_search', vector_store_ids: ['vs_team_a'] }] }) })
    expect((await search(key)).status).toBe(200)
    expect((await search(h.key)).status).toBe(404)
    for (const [body, message] of [
      [{ name: 'x', objects: [] }, 'objects must not be empty'],
      [{ name: 'x', objects: ['vs team'] }, 'objects: "vs team" is not a provider object id'],
    ] as const) {
      const res = await api('/keys', { method: 'POST', body: JSON.stringify(body) })
      expect([res.status, ((await res.json()) as { error: { message: string } }).error.message]).toEqual([400, expect.stringContaining(message)])
    }
  })

  it('switches maintenance on and off', async () => {
    const on = await api('/maintenance', { method: 'PUT', body: JSON.stringify({ enabled: true, message: 'Upgrading' }) })
    expect(on.status).toBe(200)
    const res = await fetch(`${h.url}/v1/chat/completions`, { method: 'POST', headers: { 'x-api-key': h.key } })
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toBeTruthy()
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe('Upgrading')
    await api('/maintenance', { method: 'PUT', body: JSON.stringify({ enabled: false }) })
    expect((await fetch(`${h.url}/v1/models`, { headers: { 'x-api-key': h.key } })).status).toBe(200)
    expect(changes().filter((e) => e.result === 'maintenance').map((e) => e.details)).toEqual([{ enabled: true }, { enabled: false }])
  })

  it('kills and restores one provider', async () => {
    expect((await api('/providers/openai', { method: 'PUT', body: JSON.stringify({ enabled: false, message: 'OpenAI paused' }) })).status).toBe(200)
    const off = await fetch(`${h.url}/v1/models`, { headers: { 'x-api-key': h.key } })
    expect(off.status).toBe(503)
    expect(off.headers.get('retry-after')).toBe('10')
    expect(((await off.json()) as { error: { message: string } }).error.message).toBe('OpenAI paused')
    const claude = await fetch(`${h.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': h.key, 'content-type': 'application/json' }, body: JSON.stringify(anthropicBody()) })
    expect(claude.status).toBe(200)
    await api('/providers/openai', { method: 'PUT', body: JSON.stringify({ enabled: true }) })
    expect((await fetch(`${h.url}/v1/models`, { headers: { 'x-api-key': h.key } })).status).toBe(200)
    expect((await api('/providers/mistral', { method: 'PUT', body: JSON.stringify({ enabled: false }) })).status).toBe(404)
  })

  it('refuses bad bodies with 400', async () => {
    expect((await api('/maintenance', { method: 'PUT', body: '{"enabled":"yes"}' })).status).toBe(400)
    expect((await api('/maintenance', { method: 'PUT', body: '{not json' })).status).toBe(400)
    expect((await api('/keys', { method: 'POST', body: JSON.stringify({ name: '' }) })).status).toBe(400)
  })

  it.each([
    '/v1/../v0/management/keys',
    '/v0/management/../management/keys',
    '/%2e%2e/v0/management/keys',
    '//v0/management/keys',
    '/v0//management/keys',
    '/v0/management%2fkeys',
    '/V0/MANAGEMENT/keys',
    '/v0/Management/keys',
  ])('never lets %s past the management key', async (path) => {
    const { status, body } = await httpRequest(h.url, { path, method: 'GET' })
    expect(body).not.toContain('"keys"')
    expect([400, 401, 404]).toContain(status)
  })
})

describe('management API brute force', () => {
  let h: Harness
  beforeEach(async () => {
    h = await startHarness((c) => {
      c.management = { enabled: true, secret_key: mgmtKey, allow_remote: false }
    })
  })
  afterEach(() => h.close())
  const api = (path: string, key: string | null, method = 'GET'): Promise<Response> =>
    fetch(`${h.url}/v0/management${path}`, { method, headers: key ? { authorization: `Bearer ${key}` } : {} })
  const preflight = (path: string): Promise<Response> =>
    fetch(`${h.url}${path}`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'authorization' },
    })

  it('bans wrong keys after five, and still lets the right key through', async () => {
    const wrong = randomBytes(24).toString('base64url')
    const statuses: number[] = []
    for (let i = 0; i < 6; i++) statuses.push((await api('/keys', wrong)).status)
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429])
    const banned = await api('/keys', wrong)
    expect(banned.status).toBe(429)
    expect(Number(banned.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(await banned.json()).toEqual({ error: { message: 'Too many failed attempts; try again later', status: 429 } })
    // The owner is never locked out: the kill switch works while the address is banned.
    expect((await api('/keys', mgmtKey)).status).toBe(200)
    const off = await fetch(`${h.url}/v0/management/providers/openai`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${mgmtKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ enabled: false }),
    })
    expect(off.status).toBe(200)
    expect((await api('/keys', wrong)).status).toBe(429)
    const failures = h.events.filter((e) => e.event_type === 'auth_failure' && e.result === 'invalid_management_key')
    expect(failures).toHaveLength(5)
    expect(failures[4]?.details).toEqual({ failures: 5, banned: true })
    expect(h.events.filter((e) => e.result === 'management_banned')).toHaveLength(3)
    expect(JSON.stringify(h.events) + h.logs.join('\n')).not.toContain(wrong)
    expect(JSON.stringify(h.events) + h.logs.join('\n')).not.toContain(mgmtKey)
  })

  it('does not count key-less requests or CORS preflights: five of each, then the right key gets 200', async () => {
    for (let i = 0; i < 5; i++) {
      const none = await api('/keys', null)
      expect(none.status).toBe(401)
      expect(none.headers.get('www-authenticate')).toBe('Bearer')
      expect(await none.json()).toEqual({ error: { message: 'Invalid or missing management key', status: 401 } })
      for (const path of ['/v0/management/keys', '/v0/management/providers/openai', '/v0/management/dashboard/login']) {
        const pre = await preflight(path)
        expect(pre.status).toBe(403)
        expect([...pre.headers.keys()].filter((k) => k.startsWith('access-control-'))).toEqual([])
        expect(await pre.json()).toEqual({ error: { message: 'Cross-origin requests to the management API are refused', status: 403 } })
      }
    }
    expect((await api('/keys', mgmtKey)).status).toBe(200)
    // And a wrong key still has its full budget: nothing above counted.
    const wrong = randomBytes(24).toString('base64url')
    const statuses: number[] = []
    for (let i = 0; i < 5; i++) statuses.push((await api('/keys', wrong)).status)
    expect(statuses).toEqual([401, 401, 401, 401, 401])
    expect(h.events.filter((e) => e.result === 'missing_management_key').map((e) => e.details)).toEqual(Array(5).fill({ counted: false }))
    const pre = h.events.filter((e) => e.result === 'management_preflight_refused')
    expect(pre).toHaveLength(15)
    expect(pre[0]).toMatchObject({ event_type: 'security_violation', ip: '127.0.0.1', details: { origin: 'https://evil.example' } })
    expect(h.events.filter((e) => e.result === 'invalid_management_key').map((e) => e.details?.failures)).toEqual([1, 2, 3, 4, 5])
  })

  // Linux routes all of 127/8 to the loopback interface, so each request can come from its own address.
  it('keeps an address banned while 10,001 other 127/8 addresses guess', async () => {
    const wrong = randomBytes(24).toString('base64url')
    for (let i = 0; i < 5; i++) expect((await api('/keys', wrong)).status).toBe(401)
    const from = async (localAddress: string, key: string): Promise<number> =>
      (await httpRequest(h.url, { path: '/v0/management/keys', localAddress, headers: { authorization: `Bearer ${key}` } })).status
    const N = 10_001
    const seen = new Map<number, number>()
    let next = 0
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < N) {
          const i = next++
          const addr = `127.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`
          const status = await from(addr, randomBytes(24).toString('base64url'))
          seen.set(status, (seen.get(status) ?? 0) + 1)
        }
      }),
    )
    expect(Object.fromEntries(seen)).toEqual({ 429: N })
    expect(await from('127.0.0.1', wrong)).toBe(429)
    expect(await from('127.0.0.1', mgmtKey)).toBe(200)
    expect(await from('127.200.0.1', mgmtKey)).toBe(200)
  }, 120_000)
})

describe('management API access', () => {
  it('is off without a secret key', async () => {
    const h = await startHarness()
    try {
      const res = await fetch(`${h.url}/v0/management/keys`, { headers: { authorization: 'Bearer anything-at-all' } })
      expect(res.status).toBe(401) // not the management API: a client-auth refusal
      const withClientKey = await fetch(`${h.url}/v0/management/keys`, { headers: { 'x-api-key': h.key } })
      expect(withClientKey.status).toBe(404)
    } finally {
      await h.close()
    }
  })

  it('refuses non-loopback callers unless allow_remote (trusted proxy reports a remote client)', async () => {
    const h = await startHarness((c) => {
      c.server.trust_proxy = 'loopback'
      c.management = { enabled: true, secret_key: mgmtKey, allow_remote: false }
    })
    try {
      const res = await fetch(`${h.url}/v0/management/keys`, { headers: { authorization: `Bearer ${mgmtKey}`, 'x-forwarded-for': '203.0.113.9' } })
      expect(res.status).toBe(403)
      const local = await fetch(`${h.url}/v0/management/keys`, { headers: { authorization: `Bearer ${mgmtKey}` } })
      expect(local.status).toBe(200)
    } finally {
      await h.close()
    }
  })
})
