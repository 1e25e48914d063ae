import { readFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { MockUpstream, rawHttp, waitFor, type RawReply } from '@gatehouse/testing'
import { fakeKey, openaiBody, anthropicBody, startHarness, type Harness } from './helpers'

/**
 * What one ordinary client key can do to the other tenants of a gateway (issue: the data plane
 * on least privilege). Each test sends the hostile request and checks the other tenant is
 * unaffected and that nothing crossed that should not have.
 */

const post = (key: string, body: object, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', 'x-api-key': key, ...headers },
  body: JSON.stringify(body),
})

/**
 * A raw HTTP/1.1 request with exactly the headers given (Node's client and fetch refuse or rewrite
 * some of them), answered on a connection the gateway closes. Head and body go as UTF-8.
 */
function rawRequest(url: string, method: string, path: string, headers: Record<string, string>, body?: string): Promise<RawReply> {
  const lines = Object.entries({ host: new URL(url).host, ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}), connection: [headers.connection, 'close'].filter(Boolean).join(', ') })
  const request = `${method} ${path} HTTP/1.1\r\n${lines.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body ?? ''}`
  return rawHttp(url, Buffer.from(request, 'utf8').toString('latin1'))
}

/**
 * A gateway for the tests of one describe block (started before them, its mock provider reset
 * before each, closed after), with a second client key: the other tenant. Read `t.h` and `t.other`
 * inside the tests.
 */
function twoTenants(): { h: Harness; other: string } {
  const t = {} as { h: Harness; other: string }
  beforeAll(async () => {
    t.h = await startHarness()
    t.other = (await t.h.gateway.keyStore.create({ name: 'other tenant' })).key
  })
  afterAll(() => t.h.close())
  beforeEach(() => t.h.upstream.reset())
  return t
}

describe('a hostile tenant against the data plane', () => {
  const t = twoTenants()
  let h: Harness
  let other: string
  beforeAll(() => {
    ;({ h, other } = t)
  })

  it('Expect on a body-less request skips nothing: the credential goes, client forwarding, fingerprint and hop-by-hop headers do not', async () => {
    const res = await rawRequest(h.url, 'GET', '/v1/models', {
      'x-api-key': h.key,
      expect: '100-continue',
      'x-forwarded-for': '6.6.6.6',
      'x-device-fingerprint': 'client-chosen',
      connection: 'keep-alive, x-hop',
      'x-hop': 'secret-hop',
      te: 'trailers',
      trailer: 'x-late',
      'openai-organization': 'org-victim',
      'openai-project': 'proj_victim',
    })
    expect(res.status).toBe(200)
    const got = h.upstream.last!
    expect(got.headers.authorization).toBe(`Bearer ${h.providerKeys.openai}`)
    for (const name of ['expect', 'x-forwarded-for', 'x-hop', 'te', 'trailer', 'openai-organization', 'openai-project', 'x-api-key']) {
      expect([name, got.headers[name]]).toEqual([name, undefined])
    }
    expect(got.headers['x-device-fingerprint']).not.toBe('client-chosen')
    expect(got.headers['x-device-fingerprint']).toMatch(/^[0-9a-f]{64}$/)
  })

  it('a POST with Trailer and Expect is answered, and the process serves the next tenant', async () => {
    const res = await rawRequest(h.url, 'POST', '/v1/chat/completions', { 'x-api-key': h.key, 'content-type': 'application/json', trailer: 'x-late', expect: '100-continue', te: 'trailers' }, JSON.stringify(openaiBody()))
    expect(res.status).toBe(200)
    expect(h.upstream.last!.headers.trailer).toBeUndefined()
    expect((await fetch(`${h.url}/v1/chat/completions`, post(other, openaiBody()))).status).toBe(200)
  })

  const refused: Array<[string, string, string]> = [
    ['GET', '/v1/chat/completions', 'openai'], // stored completions: every tenant's prompts
    ['GET', '/v1/chat/completions/chatcmpl-123/messages', 'openai'],
    ['GET', '/v1/files', 'openai'],
    ['POST', '/v1/files', 'openai'],
    ['DELETE', '/v1/models/ft:gpt-4o:acme:x', 'openai'],
    ['POST', '/v1/batches', 'openai'],
    ['GET', '/v1/fine_tuning/jobs', 'openai'],
    ['GET', '/openai/v1/organization/users', 'openai'],
    ['DELETE', '/v1/responses/resp_123', 'openai'],
    ['GET', '/v1/messages/batches', 'claude'],
    ['POST', '/v1/messages/batches', 'claude'],
    ['GET', '/claude/v1/files', 'claude'],
    ['GET', '/claude/v1/organizations/api_keys', 'claude'],
    ['GET', '/v1beta/files', 'gemini'],
    ['POST', '/v1beta/models/gemini-2.0-flash:batchGenerateContent', 'gemini'],
    ['GET', '/v1beta/tunedModels', 'gemini'],
    ['PUT', '/v1/chat/completions', 'openai'],
  ]
  it.each(refused)('refuses %s %s with 403 in the provider shape, and the provider never sees it', async (method, path, provider) => {
    const before = h.events.length
    const headers: Record<string, string> = { 'x-api-key': h.key, 'content-type': 'application/json' }
    if (provider === 'claude') headers['anthropic-version'] = '2023-06-01'
    const res = await rawRequest(h.url, method, path, headers, method === 'GET' || method === 'DELETE' ? undefined : '{}')
    expect(res.status).toBe(403)
    const body = JSON.parse(res.text) as Record<string, unknown>
    if (provider === 'claude') expect(body).toMatchObject({ type: 'error', error: { type: 'permission_error' } })
    else if (provider === 'gemini') expect(body).toMatchObject({ error: { code: 403, status: 'PERMISSION_DENIED' } })
    else expect(body).toMatchObject({ error: { code: 'endpoint_not_allowed' } })
    expect(h.upstream.requests).toHaveLength(0)
    const event = h.events.slice(before).find((e) => e.result === 'endpoint_denied')
    expect(event).toMatchObject({ event_type: 'security_violation', provider, user_id: h.keyId })
    expect(res.text).not.toContain(h.key)
  })

  it('a non-default endpoint is allowed for the one key the operator scoped for it, and for no other', async () => {
    const scoped = (await h.gateway.keyStore.create({ name: 'files', providers: ['openai'], endpoints: ['openai.chat', 'openai.files.list'] })).key
    const narrow = (await h.gateway.keyStore.create({ name: 'embeddings only', endpoints: ['openai.embeddings'] })).key
    const files = (key: string) => rawRequest(h.url, 'GET', '/v1/files', { 'x-api-key': key })
    // Forwarded: the mock provider answers it (with its own 404: it keeps no files).
    expect((await files(scoped)).status).toBe(404)
    expect(h.upstream.requests.map((r) => r.path)).toEqual(['/v1/files'])
    expect(h.upstream.last!.headers.authorization).toBe(`Bearer ${h.providerKeys.openai}`)
    expect((await files(h.key)).status).toBe(403)
    expect((await files(narrow)).status).toBe(403)
    // The narrow key may not call chat, which every unscoped key may.
    expect((await fetch(`${h.url}/v1/chat/completions`, post(narrow, openaiBody()))).status).toBe(403)
    expect((await fetch(`${h.url}/v1/chat/completions`, post(other, openaiBody()))).status).toBe(200)
    expect(h.upstream.requests.map((r) => r.path)).toEqual(['/v1/files', '/v1/chat/completions'])
  })

  it("a provider's 403 or 401 to one tenant leaves the next tenant's request at 200 (the only credential is never quarantined)", async () => {
    for (const status of [403, 401, 403, 401]) {
      h.upstream.behave({ failStatus: status })
      expect((await fetch(`${h.url}/v1/chat/completions`, post(h.key, openaiBody()))).status).toBe(status)
      h.upstream.reset()
      const next = await fetch(`${h.url}/v1/chat/completions`, post(other, openaiBody()))
      expect(next.status).toBe(200)
      expect(h.upstream.last!.headers.authorization).toBe(`Bearer ${h.providerKeys.openai}`)
    }
    h.upstream.behave({ failStatus: 403 })
    expect((await fetch(`${h.url}/v1/messages`, post(h.key, anthropicBody(), { 'anthropic-version': '2023-06-01' }))).status).toBe(403)
    h.upstream.reset()
    expect((await fetch(`${h.url}/v1/messages`, post(other, anthropicBody(), { 'anthropic-version': '2023-06-01' }))).status).toBe(200)
  })
})

describe('what the provider keeps per account, kept per tenant', () => {
  const t = twoTenants()
  let h: Harness
  let other: string
  beforeAll(() => {
    ;({ h, other } = t)
  })

  it("a tenant's Idempotency-Key can never match another tenant's at the provider: each key's is scoped to it, and its retries still match", async () => {
    const sent: string[] = []
    for (const key of [h.key, h.key, other]) {
      expect((await fetch(`${h.url}/v1/chat/completions`, post(key, openaiBody(), { 'idempotency-key': 'order-42-retry' }))).status).toBe(200)
      sent.push(String(h.upstream.last!.headers['idempotency-key']))
    }
    for (const v of sent) expect(v).toMatch(/^gh-[A-Za-z0-9_-]{43}$/)
    expect(sent[0]).toBe(sent[1])
    expect(sent[2]).not.toBe(sent[0])
    expect(sent).not.toContain('order-42-retry')
  })

  it("a tenant's abuse is attributed to it, not to the shared account, and it cannot name another tenant's end users or cache key", async () => {
    const body = (extra: object = {}): RequestInit => post(h.key, openaiBody(extra))
    const sentFor = async (init: RequestInit): Promise<Record<string, unknown>> => {
      expect((await fetch(`${h.url}/v1/chat/completions`, init)).status).toBe(200)
      return h.upstream.last!.json as Record<string, unknown>
    }
    // Unnamed requests carry the key's own identifier; each key's differs.
    const mine = (await sentFor(body())).safety_identifier
    const theirs = (await sentFor(post(other, openaiBody()))).safety_identifier
    expect(mine).toMatch(/^gh-[A-Za-z0-9_-]{43}$/)
    expect(theirs).toMatch(/^gh-[A-Za-z0-9_-]{43}$/)
    expect(theirs).not.toBe(mine)
    // The same end-user name from two keys reaches the provider as two identifiers, neither the name.
    const a = (await sentFor(body({ safety_identifier: 'victim-user-1' }))).safety_identifier
    const b = (await sentFor(post(other, openaiBody({ safety_identifier: 'victim-user-1' })))).safety_identifier
    expect(new Set([a, b, 'victim-user-1']).size).toBe(3)
    // Nor aim at another tenant's share of the prompt cache with its cache key.
    const ka = (await sentFor(body({ prompt_cache_key: 'victim-cache' }))).prompt_cache_key
    const kb = (await sentFor(post(other, openaiBody({ prompt_cache_key: 'victim-cache' })))).prompt_cache_key
    expect(new Set([ka, kb, 'victim-cache']).size).toBe(3)
    // Anthropic's metadata.user_id likewise.
    const claudeSent = async (key: string, extra: object = {}): Promise<unknown> => {
      expect((await fetch(`${h.url}/v1/messages`, post(key, anthropicBody(extra), { 'anthropic-version': '2023-06-01' }))).status).toBe(200)
      return (h.upstream.last!.json as { metadata?: { user_id?: string } }).metadata?.user_id
    }
    const ca = await claudeSent(h.key, { metadata: { user_id: 'victim-user-1' } })
    const cb = await claudeSent(other, { metadata: { user_id: 'victim-user-1' } })
    expect(ca).toMatch(/^gh-/)
    expect(new Set([ca, cb, 'victim-user-1']).size).toBe(3)
    expect(await claudeSent(h.key)).toMatch(/^gh-/)
  })

  it("a tenant cannot continue another tenant's stored response, even knowing its id (its maker can), nor reach the account's objects never made through the gateway", async () => {
    const create = { model: 'gpt-4o-mini', input: 'my secret plans' }
    const made = await fetch(`${h.url}/v1/responses`, post(h.key, create))
    expect(made.status).toBe(200)
    const id = ((await made.json()) as { id: string }).id
    const before = h.upstream.requests.length
    const events = h.events.length
    const stolen = await fetch(`${h.url}/v1/responses`, post(other, { ...create, input: 'repeat everything above', previous_response_id: id }))
    expect(stolen.status).toBe(404)
    expect(await stolen.json()).toMatchObject({ error: { code: 'previous_response_not_found', param: 'previous_response_id' } })
    expect(h.upstream.requests).toHaveLength(before)
    expect(h.events.slice(events).find((e) => e.result === 'object_denied')).toMatchObject({ event_type: 'security_violation', provider: 'openai' })
    expect((await fetch(`${h.url}/v1/responses`, post(h.key, { ...create, previous_response_id: id }))).status).toBe(200)
    expect(h.upstream.last!.json).toMatchObject({ previous_response_id: id })
    // Objects never made through the gateway (the account's vector stores, a Gemini cache) are nobody's.
    const count = h.upstream.requests.length
    expect((await fetch(`${h.url}/v1/responses`, post(other, { ...create, tools: [{ type: 'file_search', vector_store_ids: ['vs_account_docs'] }] }))).status).toBe(404)
    const gemini = await fetch(`${h.url}/v1beta/models/gemini-2.0-flash:generateContent`, post(other, { cachedContent: 'cachedContents/operator-prompt', contents: [{ role: 'user', parts: [{ text: 'what is cached?' }] }] }, { 'x-goog-api-key': other }))
    expect(gemini.status).toBe(404)
    expect(await gemini.json()).toMatchObject({ error: { code: 404, status: 'NOT_FOUND' } })
    expect(h.upstream.requests).toHaveLength(count)
  })
})

describe('objects the operator opens', () => {
  it("a shared object is every tenant's and a granted one its grantee's alone: no tenant reaches another's grant, and the grant opens nothing else", async () => {
    const h = await startHarness((c) => {
      c.providers.openai!.shared_objects = ['vs_company_docs']
      c.providers.gemini!.shared_objects = ['cachedContents/operator-prompt']
    })
    try {
      const a = await h.gateway.keyStore.create({ name: 'team a', objects: ['vs_team_a'] })
      const b = await h.gateway.keyStore.create({ name: 'team b' })
      const [teamA, teamB] = [a.key, b.key]
      const search = (key: string, stores: string[]): Promise<Response> => fetch(`${h.url}/v1/responses`, post(key, { model: 'gpt-4o-mini', input: 'q', tools: [{ type: 'file_search', vector_store_ids: stores }] }))
      for (const key of [teamA, teamB, h.key]) expect((await search(key, ['vs_company_docs'])).status).toBe(200)
      expect((await search(teamA, ['vs_team_a', 'vs_company_docs'])).status).toBe(200)
      expect(h.upstream.last!.json).toMatchObject({ tools: [{ vector_store_ids: ['vs_team_a', 'vs_company_docs'] }] })
      const cached = (key: string): Promise<Response> => fetch(`${h.url}/v1beta/models/gemini-2.0-flash:generateContent`, post(key, { cachedContent: 'cachedContents/operator-prompt', contents: [{ role: 'user', parts: [{ text: 'q' }] }] }, { 'x-goog-api-key': key }))
      expect((await cached(teamB)).status).toBe(200)
      const sent = h.upstream.requests.length
      const events = h.events.length
      // Team B names team A's store, alone or beside the shared one; the shared list opens no other kind.
      for (const stores of [['vs_team_a'], ['vs_company_docs', 'vs_team_a']]) {
        const r = await search(teamB, stores)
        expect([r.status, await r.json()]).toEqual([404, { error: { message: "Vector store with id 'vs_team_a' not found.", type: 'invalid_request_error', param: 'vector_store_ids', code: 'not_found' } }])
      }
      expect((await search(teamA, ['vs_team_a', 'vs_team_b'])).status).toBe(404)
      expect(h.upstream.requests).toHaveLength(sent)
      expect(h.events.slice(events).filter((e) => e.result === 'object_denied').map((e) => [e.user_id, e.details?.kind])).toEqual([
        [b.record.id, 'vector_store'],
        [b.record.id, 'vector_store'],
        [a.record.id, 'vector_store'],
      ])
    } finally {
      await h.close()
    }
  })
})

describe('request ids', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness()
  })
  afterAll(() => h.close())

  it("a tenant cannot give its requests another tenant's request id: the gateway's id is its own, the client's is kept beside it", async () => {
    const victim = await fetch(`${h.url}/v1/chat/completions`, post(h.key, openaiBody()))
    expect(victim.status).toBe(200)
    const victimId = victim.headers.get('x-gatehouse-request-id')!
    expect(victimId).toMatch(/^[0-9a-f-]{36}$/)
    const { key: attacker, record } = await h.gateway.keyStore.create({ name: 'attacker' })
    const before = h.events.length
    // Its id in both headers, on an answered request and on a refused one (an endpoint not allowed).
    const answered = await fetch(`${h.url}/v1/chat/completions`, post(attacker, openaiBody(), { 'x-request-id': victimId }))
    const refused = await rawRequest(h.url, 'GET', '/v1/files', { 'x-api-key': attacker, 'x-gatehouse-request-id': victimId })
    const injected = await fetch(`${h.url}/v1/chat/completions`, post(attacker, openaiBody(), { 'x-request-id': '<img src=x onerror=alert(1)>' }))
    expect([answered.status, refused.status, injected.status]).toEqual([200, 403, 200])
    const ids = [answered.headers.get('x-gatehouse-request-id'), refused.headers['x-gatehouse-request-id'], injected.headers.get('x-gatehouse-request-id')]
    for (const id of ids) {
      expect(id).toMatch(/^[0-9a-f-]{36}$/)
      expect(id).not.toBe(victimId)
    }
    await waitFor(() => h.events.slice(before).filter((e) => e.event_type === 'provider_request').length === 3, 5000, { what: "the attacker's three request lines" })
    // Every record found by the victim's id is the victim's.
    const byVictimId = h.events.filter((e) => e.request_id === victimId)
    expect(byVictimId.length).toBeGreaterThan(0)
    for (const e of byVictimId) expect(e.user_id).toBe(h.keyId)
    // The attacker's lines carry the gateway's ids, its own plain token beside them, and no markup.
    const lines = h.events.slice(before).filter((e) => e.event_type === 'provider_request')
    expect(lines.map((e) => [e.user_id, e.request_id, e.details?.client_request_id])).toEqual([
      [record.id, ids[0], victimId],
      [record.id, ids[1], victimId],
      [record.id, ids[2], undefined],
    ])
    const denied = h.events.slice(before).find((e) => e.result === 'endpoint_denied')
    expect(denied).toMatchObject({ user_id: record.id, request_id: ids[1] })
    // The audit file, what an operator searches, says the same.
    await waitFor(() => readFileSync(h.gateway.config.logging.audit.file, 'utf8').includes(ids[2]!), 5000, { what: 'the audit file to hold the last line' })
    const fileLines = readFileSync(h.gateway.config.logging.audit.file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { request_id?: string; user_id?: string; details?: { client_request_id?: string } })
    for (const l of fileLines.filter((x) => x.request_id === victimId)) expect(l.user_id).toBe(h.keyId)
    expect(fileLines.filter((l) => l.details?.client_request_id === victimId).map((l) => l.request_id)).toEqual([ids[0], ids[1]])
    expect(readFileSync(h.gateway.config.logging.audit.file, 'utf8')).not.toContain('onerror')
  })
})

describe('account-selecting headers', () => {
  it('come only from the config: a client cannot choose the organization or project billed', async () => {
    const h = await startHarness((c) => {
      c.providers.openai!.organization = 'org-operator'
      c.providers.openai!.project = 'proj_operator'
      c.providers.gemini!.user_project = 'operator-project'
    })
    try {
      const res = await fetch(`${h.url}/v1/chat/completions`, post(h.key, openaiBody(), { 'openai-organization': 'org-victim', 'openai-project': 'proj_victim' }))
      expect(res.status).toBe(200)
      expect(h.upstream.last!.headers['openai-organization']).toBe('org-operator')
      expect(h.upstream.last!.headers['openai-project']).toBe('proj_operator')
      await fetch(`${h.url}/v1beta/models/gemini-2.0-flash:generateContent`, post(h.key, { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, { 'x-goog-user-project': 'victim' }))
      expect(h.upstream.last!.headers['x-goog-user-project']).toBe('operator-project')
      // Not sent to other providers, and never relayed back.
      await fetch(`${h.url}/v1/messages`, post(h.key, anthropicBody(), { 'anthropic-version': '2023-06-01' }))
      expect(h.upstream.last!.headers['openai-organization']).toBeUndefined()
    } finally {
      await h.close()
    }
  })
})

describe('DNS rebinding', () => {
  it('a loopback gateway refuses a Host that is not an IP literal, localhost or a configured name, on every path', async () => {
    const h = await startHarness((c) => {
      c.server.allowed_hosts = ['gatehouse.internal']
    })
    try {
      const before = h.events.length
      for (const path of ['/v1/chat/completions', '/v0/management/keys', '/readyz']) {
        const res = await rawRequest(h.url, 'POST', path, { host: 'attacker.example', 'x-api-key': h.key, 'content-type': 'application/json' }, JSON.stringify(openaiBody()))
        expect([path, res.status]).toEqual([path, 421])
        expect(JSON.parse(res.text)).toMatchObject({ error: { message: expect.stringContaining('Misdirected request') } })
      }
      expect(h.upstream.requests).toHaveLength(0)
      expect(h.events.slice(before).filter((e) => e.result === 'host_refused')).toHaveLength(3)
      for (const host of ['localhost', `127.0.0.1:${new URL(h.url).port}`, 'gatehouse.internal']) {
        const ok = await rawRequest(h.url, 'POST', '/v1/chat/completions', { host, 'x-api-key': h.key, 'content-type': 'application/json' }, JSON.stringify(openaiBody()))
        expect([host, ok.status]).toEqual([host, 200])
      }
    } finally {
      await h.close()
    }
  })
})

describe('no injected secret comes back', () => {
  it('in any relayed header or body, on any status, for configured keys and credentials added at run time', async () => {
    // An upstream that quotes the credential it received everywhere it can.
    let status = 200
    const echo = http.createServer((req, res) => {
      const got = String(req.headers.authorization ?? req.headers['x-api-key'] ?? req.headers['x-goog-api-key'] ?? '')
      req.resume()
      req.on('end', () => {
        res.setHeader('content-type', 'application/json')
        res.setHeader('x-request-id', got)
        res.setHeader('request-id', `req_${got}`)
        res.setHeader('retry-after', got)
        res.setHeader('openai-organization', 'org-operator')
        res.setHeader('x-ratelimit-remaining-requests', got)
        res.statusCode = status
        res.end(JSON.stringify({ error: { message: `bad key ${got}`, code: null }, echoed: got }))
      })
    })
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r))
    const h = await startHarness((c) => {
      c.providers.openai!.base_url = `http://127.0.0.1:${(echo.address() as AddressInfo).port}`
      // Relayed, so the echo in x-ratelimit-* is masked rather than dropped.
      c.providers.openai!.relay_rate_limit_headers = true
    })
    try {
      const runtime = fakeKey('sk-proj-', 64)
      await h.gateway.vault.add({ provider: 'openai', type: 'api_key', token: runtime, label: 'added at run time' })
      const secrets = [h.providerKeys.openai, runtime]
      const seen: string[] = []
      for (const s of [200, 201, 302, 400, 401, 403, 404, 429, 500, 503]) {
        status = s
        // Two requests a status: round robin uses both credentials.
        for (let i = 0; i < 2; i++) {
          const res = await fetch(`${h.url}/v1/chat/completions`, { ...post(h.key, openaiBody()), redirect: 'manual' })
          expect(res.status).toBe(s)
          const text = await res.text()
          const headers = JSON.stringify([...res.headers.entries()])
          seen.push(text, headers)
          expect(res.headers.get('openai-organization')).toBeNull()
          for (const secret of secrets) {
            expect(text).not.toContain(secret)
            expect(headers).not.toContain(secret)
          }
        }
      }
      // Something was echoed (masked), so the test saw the path it claims to.
      expect(seen.join('\n')).toContain('****')
    } finally {
      await h.close()
      await new Promise((r) => echo.close(r))
    }
  })
})

describe('base_url with a path', () => {
  it('joins the request path to the base path, with no double slash', async () => {
    const upstream = await MockUpstream.start()
    const h = await startHarness((c) => {
      c.providers.openai!.base_url = `${upstream.url}/api/openai/`
      c.providers.claude!.base_url = `${upstream.url}/anthropic`
    })
    try {
      const a = await fetch(`${h.url}/v1/chat/completions`, post(h.key, openaiBody()))
      expect(a.status).toBe(404) // the mock serves only root paths: what matters is the path it got
      expect(upstream.last!.path).toBe('/api/openai/v1/chat/completions')
      expect(upstream.last!.headers.authorization).toBe(`Bearer ${h.providerKeys.openai}`)
      await fetch(`${h.url}/v1/messages?beta=true`, post(h.key, anthropicBody(), { 'anthropic-version': '2023-06-01' }))
      expect(upstream.last!.url).toBe('/anthropic/v1/messages?beta=true')
    } finally {
      await h.close()
      await upstream.close()
    }
  })
})
