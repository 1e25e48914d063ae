import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import express from 'express'
import { httpRequest, listen, sleep, waitFor } from '@gatehouse/testing'
import { gatehouseProxy } from '@gatehouse/proxy'
import { loadConfig } from '@gatehouse/server'
import { anthropicBody, deleteRedisKeys, openaiBody, postChat, postMessages, startHarness, withTenantEndUser, type Harness } from './helpers'

let h: Harness
beforeAll(async () => {
  h = await startHarness()
})
afterAll(() => h.close())
beforeEach(() => h.upstream.reset())

describe('gateway proxy: forwarding and the answer', () => {
  it('forwards an Anthropic request with the provider key injected and the client credentials removed', async () => {
    const res = await fetch(`${h.url}/v1/messages`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-api-key': h.key,
        cookie: 'session=abc',
        'x-forwarded-for': '6.6.6.6',
        forwarded: 'for=6.6.6.6',
        'anthropic-version': '2023-06-01',
      },
      body: JSON.stringify(anthropicBody()),
    })
    expect(res.status).toBe(200)
    const body = (await res.json()) as { type: string; usage: unknown }
    expect(body.type).toBe('message')
    const got = h.upstream.last!
    expect(got.headers['x-api-key']).toBe(h.providerKeys.claude)
    expect(got.headers.authorization).toBeUndefined()
    expect(got.headers.cookie).toBeUndefined()
    expect(got.headers['x-forwarded-for']).toBeUndefined()
    expect(got.headers.forwarded).toBeUndefined()
    expect(got.headers['anthropic-version']).toBe('2023-06-01')
    expect(got.headers.host).toBe(new URL(h.upstream.url).host)
    expect(JSON.stringify(got.rawHeaders)).not.toContain(h.key)
    expect(res.headers.get('x-gatehouse-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    expect(res.headers.get('x-request-id')).toMatch(/^upstream-/)
  })

  it.each([
    ['openai', '/v1/chat/completions', 'authorization', (k: string) => `Bearer ${k}`, openaiBody()],
    ['gemini', '/v1beta/models/gemini-2.5-flash:generateContent', 'x-goog-api-key', (k: string) => k, { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }],
  ] as const)('injects the %s credential in its own header', async (provider, path, header, value, body) => {
    const res = await fetch(`${h.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${h.key}` },
      body: JSON.stringify(body),
    })
    expect(res.status).toBe(200)
    expect(h.upstream.last!.headers[header]).toBe(value(h.providerKeys[provider]))
  })

  it('answers the provider path exactly as the whole Express app does, and leaves control routes to the app', async () => {
    // The server runs provider requests through the same layers without Express's router; the app
    // itself (gateway.app, for embedding) must give the same answers.
    const viaApp = http.createServer(h.gateway.app)
    await new Promise<void>((resolve) => viaApp.listen(0, '127.0.0.1', resolve))
    const appUrl = `http://127.0.0.1:${(viaApp.address() as AddressInfo).port}`
    try {
      const cases: Array<[string, RequestInit]> = [
        ['/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': h.key }, body: JSON.stringify(openaiBody()) }],
        ['/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': 'gate_live_wrong' }, body: '{}' }],
        ['/v1/messages', { method: 'POST', headers: { 'content-type': 'text/plain', 'x-api-key': h.key }, body: 'hi' }],
        ['/no/such/route', { headers: { 'x-api-key': h.key } }],
        ['/v1/../v0/management/keys', { headers: { 'x-api-key': h.key } }],
      ]
      for (const [path, init] of cases) {
        const a = await fetch(`${h.url}${path}`, init)
        const b = await fetch(`${appUrl}${path}`, init)
        const names = (r: Response): string[] => [...r.headers.keys()].filter((n) => n !== 'date' && n !== 'x-request-id' && n !== 'x-gatehouse-request-id').sort()
        expect([path, a.status]).toEqual([path, b.status])
        expect(names(a)).toEqual(names(b))
        const strip = (t: string): string => t.replace(/"(id|created)":("[^"]*"|\d+)/g, '')
        expect(strip(await a.text())).toEqual(strip(await b.text()))
      }
      // Control routes match case-insensitively in Express; they never take the provider path.
      for (const path of ['/healthz', '/HEALTHZ', '/readyz/']) {
        const res = await fetch(`${h.url}${path}`)
        expect([path, res.status]).toEqual([path, 200])
      }
    } finally {
      await new Promise((resolve) => viaApp.close(resolve))
    }
  })

  it('relays allowlisted upstream response headers, repeated ones joined as Node joins them; others, cookies and account ids dropped', async () => {
    const upstream = http.createServer((_req, res) => {
      res.setHeader('x-ratelimit-remaining-requests', ['7', '8'])
      res.setHeader('openai-processing-ms', '12')
      res.setHeader('x-multi', ['a', 'b'])
      res.setHeader('openai-organization', 'org-tenant-a')
      res.setHeader('openai-project', 'proj_tenant_a')
      res.setHeader('set-cookie', ['s=1', 't=2'])
      res.setHeader('x-request-id', 'upstream-id')
      res.setHeader('content-type', 'application/json')
      res.end('{"ok":true}')
    })
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
    const once = await startHarness((c) => {
      c.providers.openai!.base_url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
      c.providers.openai!.relay_rate_limit_headers = true
    })
    try {
      const res = await fetch(`${once.url}/v1/models`, { headers: { 'x-api-key': once.key } })
      expect(res.status).toBe(200)
      expect(res.headers.get('x-ratelimit-remaining-requests')).toBe('7, 8')
      expect(res.headers.get('openai-processing-ms')).toBe('12')
      expect(res.headers.get('x-multi')).toBeNull()
      expect(res.headers.get('openai-organization')).toBeNull()
      expect(res.headers.get('openai-project')).toBeNull()
      expect(res.headers.get('set-cookie')).toBeNull()
      // The provider's id is kept as it is; the gateway's own is beside it.
      expect(res.headers.get('x-request-id')).toBe('upstream-id')
      expect(res.headers.get('x-gatehouse-request-id')).toMatch(/^[0-9a-f-]{36}$/)
      expect(res.headers.get('x-upstream-request-id')).toBeNull()
      expect(await res.text()).toBe('{"ok":true}')
    } finally {
      await once.close()
      await new Promise((resolve) => upstream.close(resolve))
    }
  })
})

describe('gateway proxy: paths, bodies, pinning and upstream errors', () => {
  it('serves /<provider>/<path> for every configured provider', async () => {
    const res = await fetch(`${h.url}/openai/v1/models`, { headers: { 'x-api-key': h.key } })
    expect(res.status).toBe(200)
    expect(h.upstream.last!.path).toBe('/v1/models')
  })

  it("forwards request bodies byte for byte (a body that sets its cap: one without gets the cap written in), but for its key's end-user identifier", async () => {
    const raw = '{ "model":"gpt-4o",\n  "messages":[{"role":"user","content":"héllo \\u2028 wörld 🌍"}] ,"x": 1.50, "max_tokens": 7 }'
    const res = await fetch(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': h.key },
      body: raw,
    })
    expect(res.status).toBe(200)
    expect(h.upstream.last!.body.equals(Buffer.from(withTenantEndUser(raw, h.keyId, 'openai')))).toBe(true)
  })

  it('keeps the target pinned: absolute-form URIs, Host headers and body fields change nothing', async () => {
    const { status } = await httpRequest(h.url, {
      method: 'POST',
      path: 'http://169.254.169.254/v1/chat/completions',
      headers: { host: '169.254.169.254', 'content-type': 'application/json', 'x-api-key': h.key },
      body: JSON.stringify(openaiBody({ api_base: 'http://169.254.169.254', base_url: 'http://evil.example' })),
    })
    expect(status).toBe(200)
    expect(h.upstream.requests).toHaveLength(1)
    expect(h.upstream.last!.path).toBe('/v1/chat/completions')
  })

  it('strips Set-Cookie, hop-by-hop headers and the shared account\'s rate-limit figures from upstream responses', async () => {
    h.upstream.behave({ headers: { 'set-cookie': ['a=1', 'b=2'], 'x-ratelimit-limit-requests': '100', 'anthropic-ratelimit-tokens-remaining': '5', 'x-internal-route': 'pod-7', 'alt-svc': 'h3=":443"', 'x-should-retry': 'true' } })
    for (const path of ['/v1/models', '/v1/messages']) {
      const res = path === '/v1/models' ? await fetch(`${h.url}${path}`, { headers: { 'x-api-key': h.key } }) : await postMessages(h)
      expect([path, res.status]).toEqual([path, 200])
      expect(res.headers.get('set-cookie')).toBeNull()
      expect(res.headers.get('x-internal-route')).toBeNull()
      expect(res.headers.get('alt-svc')).toBeNull()
      // The provider's figures are the whole account's, moved by every tenant: not relayed by default.
      expect(res.headers.get('x-ratelimit-limit-requests')).toBeNull()
      expect(res.headers.get('anthropic-ratelimit-tokens-remaining')).toBeNull()
      expect(res.headers.get('x-should-retry')).toBe('true')
    }
  })

  it('relays a provider\'s account rate-limit figures only where providers.<name>.relay_rate_limit_headers says so', async () => {
    const once = await startHarness((c) => {
      c.providers.claude!.relay_rate_limit_headers = true
    })
    try {
      once.upstream.behave({ headers: { 'x-ratelimit-limit-requests': '100', 'anthropic-ratelimit-tokens-remaining': '5' } })
      const claude = await postMessages(once)
      expect(claude.status).toBe(200)
      expect(claude.headers.get('anthropic-ratelimit-tokens-remaining')).toBe('5')
      expect(claude.headers.get('x-ratelimit-limit-requests')).toBeNull()
      const openai = await fetch(`${once.url}/v1/models`, { headers: { 'x-api-key': once.key } })
      expect(openai.status).toBe(200)
      expect(openai.headers.get('x-ratelimit-limit-requests')).toBeNull()
    } finally {
      await once.close()
    }
  })

  it('passes upstream redirects back without following them', async () => {
    h.upstream.behave({ redirectTo: 'http://127.0.0.1:1/elsewhere' })
    const res = await fetch(`${h.url}/v1/models`, { headers: { 'x-api-key': h.key }, redirect: 'manual' })
    expect(res.status).toBe(302)
    expect(res.headers.get('location')).toBe('http://127.0.0.1:1/elsewhere')
    expect(h.upstream.requests).toHaveLength(1)
  })

  it('masks an upstream error body that echoes the credential', async () => {
    h.upstream.behave({ failStatus: 401, failMessage: 'Incorrect API key provided: {key}' })
    const res = await postChat(h)
    const text = await res.text()
    expect(res.status).toBe(401)
    expect(text).not.toContain(h.providerKeys.openai)
    expect(JSON.parse(text).error.message).toBe('Incorrect API key provided: Bearer sk-proj-****')
  })

  it('answers 404 in the provider shape for an unknown route, after auth', async () => {
    expect((await fetch(`${h.url}/v2/unknown`)).status).toBe(401)
    const res = await fetch(`${h.url}/v2/unknown`, { headers: { 'x-api-key': h.key } })
    expect(res.status).toBe(404)
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe('Unknown route')
  })

  it('answers /healthz and /readyz without auth and without data', async () => {
    const health = await fetch(`${h.url}/healthz`)
    expect(health.status).toBe(200)
    expect(await health.json()).toEqual({ status: 'ok' })
    const ready = await fetch(`${h.url}/readyz`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ status: 'ready' })
  })
})


describe('gateway refusals', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness()
  })
  afterAll(() => h.close())
  beforeEach(() => h.upstream.reset())

  it.each([
    ['no key', {}],
    ['a wrong key', { 'x-api-key': 'gate_live_' + 'A'.repeat(43) }],
    ['a provider key instead of a client key', { 'x-api-key': 'sk-ant-api03-' + 'b'.repeat(60) }],
  ])('refuses %s with 401 and never calls the upstream', async (_name, headers) => {
    const res = await fetch(`${h.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(anthropicBody()),
    })
    expect(res.status).toBe(401)
    expect(res.headers.get('www-authenticate')).toBe('Bearer')
    expect(((await res.json()) as { type: string }).type).toBe('error')
    expect(h.upstream.requests).toHaveLength(0)
  })

  it('refuses a honeytoken with 401 and denies its caller from then on', async () => {
    const res = await fetch(`${h.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer gate_live_EXAMPLE0do0not0use0this0key0it0never0works0' },
      body: JSON.stringify(anthropicBody()),
    })
    expect(res.status).toBe(401)
    expect(h.events.some((e) => e.event_type === 'security_violation' && e.result === 'honeytoken')).toBe(true)
    let entries = await h.gateway.ipFilter.list()
    await waitFor(async () => (entries = await h.gateway.ipFilter.list()).length > 0, 1000, { what: 'the honeytoken ban' })
    expect(entries).toEqual([expect.objectContaining({ ip: '127.0.0.1', reason: 'honeytoken presented' })])
    const next = await fetch(`${h.url}/v1/models`, { headers: { 'x-api-key': h.key } })
    expect(next.status).toBe(403)
    expect(h.upstream.requests).toHaveLength(0)
    await h.gateway.ipFilter.remove('127.0.0.1')
    expect((await fetch(`${h.url}/v1/models`, { headers: { 'x-api-key': h.key } })).status).toBe(200)
  })

  it('refuses a key in the query string with 400', async () => {
    const res = await fetch(`${h.url}/v1beta/models/gemini-2.5-flash:generateContent?key=${h.key}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    })
    expect(res.status).toBe(400)
    expect(((await res.json()) as { error: { status: string } }).error.status).toBe('INVALID_ARGUMENT')
    expect(h.upstream.requests).toHaveLength(0)
  })

  it('tells clients the configured Retry-After in maintenance (server.retry_after), and a bad value is named', async () => {
    const own = await startHarness((c) => {
      c.server.retry_after = '2s'
    })
    try {
      own.gateway.runtime.maintenance = { enabled: true, message: 'Deploying' }
      const res = await fetch(`${own.url}/v1/chat/completions`, { method: 'POST', headers: { 'x-api-key': own.key } })
      expect(res.status).toBe(503)
      expect(res.headers.get('retry-after')).toBe('2')
      expect(((await res.json()) as { error: { message: string } }).error.message).toBe('Deploying')
    } finally {
      await own.close()
    }
    const dir = mkdtempSync(join(tmpdir(), 'gh-retry-'))
    try {
      writeFileSync(join(dir, 'c.yaml'), 'server: { retry_after: soon }\n')
      expect(() => loadConfig({ file: join(dir, 'c.yaml'), env: {}, cwd: dir })).toThrow(expect.objectContaining({ errors: [expect.stringContaining('server.retry_after')] }))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('answers 503 with the message and Retry-After in maintenance', async () => {
    h.gateway.runtime.maintenance = { enabled: true, message: 'Back at noon' }
    try {
      const res = await fetch(`${h.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': h.key } })
      expect(res.status).toBe(503)
      expect(res.headers.get('retry-after')).toBe('10')
      expect(await res.json()).toEqual({ type: 'error', error: { type: 'overloaded_error', message: 'Back at noon' } })
    } finally {
      h.gateway.runtime.maintenance.enabled = false
    }
  })
})

describe('no upstream credential', () => {
  it('answers 403 (not retryable) in the Gemini shape naming the provider and its setting', async () => {
    const h = await startHarness((c) => {
      delete c.providers.gemini!.api_key
    })
    try {
      const res = await fetch(`${h.url}/v1beta/models/x:generateContent`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-goog-api-key': h.key },
        body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
      })
      expect(res.status).toBe(403)
      expect(((await res.json()) as { error: { message: string; status: string } }).error).toMatchObject({
        message: expect.stringContaining('Provider "gemini" has no credential configured on this gateway: set providers.gemini.api_key (or the GEMINI_API_KEY'),
        status: 'PERMISSION_DENIED',
      })
      expect(h.upstream.requests).toHaveLength(0)
    } finally {
      await h.close()
    }
  })
})

describe('rate-limit fields of an admitted request', () => {
  it('names every limit in one draft-8 RateLimit and RateLimit-Policy list, with no draft-6 fields mixed in, and the provider\'s account-wide figures never replace the key\'s', async () => {
    const h = await startHarness((c) => {
      c.server.security.rate_limiting = { enabled: true, requests_per_second: 50, burst: 100, per_ip: true }
      c.auth.key_limits = { requests_per_minute: 600, tokens_per_minute: 1_000_000 }
      // An operator who relays the provider's account figures: the key's own still win.
      c.providers.openai!.relay_rate_limit_headers = true
    })
    try {
      // The provider's own, account-wide figures and cache policy: the gateway's stay.
      h.upstream.behave({ headers: { 'x-ratelimit-limit-requests': '10000', 'x-ratelimit-remaining-tokens': '5', 'cache-control': 'no-cache' } })
      const res = await postChat(h)
      expect(res.status).toBe(200)
      // One structured-field list each (RFC 8941): `"name"; q=…; w=…; pk=:…:` and `"name"; r=…; t=…`.
      const policy = res.headers.get('ratelimit-policy')!.split(', ')
      expect(policy.map((p) => /^"([a-z-]+)"; q=\d+; w=\d+; pk=:[A-Za-z0-9+/=]+:$/.exec(p)?.[1])).toEqual(['ip', 'key-rpm', 'key-tpm'])
      expect(policy[0]).toContain('q=100; w=2;')
      const fields = res.headers.get('ratelimit')!.split(', ')
      expect(fields.map((f) => /^"([a-z-]+)"; r=\d+; t=\d+$/.exec(f)?.[1])).toEqual(['ip', 'key-rpm', 'key-tpm'])
      for (const name of ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset']) expect([name, res.headers.get(name)]).toEqual([name, null])
      expect(res.headers.get('x-ratelimit-limit-requests')).toBe('600')
      expect(Number(res.headers.get('x-ratelimit-remaining-tokens'))).toBeGreaterThan(900_000)
      expect(res.headers.get('cache-control')).toBe('no-store')
    } finally {
      await h.close()
    }
  })
})

describe('the upstream request and the request stream', () => {
  it('forwards bodies with the rate limiter on Redis (its decision resumes from a socket callback)', async () => {
    const prefix = `gh-test-${randomBytes(4).toString('hex')}:`
    const h = await startHarness((c) => {
      c.store = { ...c.store, type: 'redis', url: 'redis://127.0.0.1:6379', on_error: 'deny', replicas: 1, key_prefix: prefix }
      c.server.security.rate_limiting = { enabled: true, requests_per_second: 1000, burst: 1000, per_ip: true }
    })
    let closed = false
    try {
      for (const [path, body, header, provider] of [
        ['/v1/chat/completions', openaiBody(), 'authorization', 'openai'],
        ['/v1/messages', anthropicBody(), 'x-api-key', 'claude'],
      ] as const) {
        const sent = JSON.stringify(body)
        const expected = withTenantEndUser(sent, h.keyId, provider)
        const res = await fetch(`${h.url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-api-key': h.key },
          body: sent,
        })
        expect(res.status).toBe(200)
        expect(res.headers.get('ratelimit-policy')).toBeTruthy()
        const got = h.upstream.last!
        expect(got.body.toString()).toBe(expected)
        expect(got.headers['content-length']).toBe(String(Buffer.byteLength(expected)))
        expect(got.headers[header]).toContain(header === 'authorization' ? h.providerKeys.openai : h.providerKeys.claude)
        expect(JSON.stringify(got.rawHeaders)).not.toContain(h.key)
      }
      expect(h.upstream.requests).toHaveLength(2)
      closed = true
      await h.close()
      // Closing the gateway closes every Redis connection it opened (the denylist's subscription
      // included): an open one would keep a stopped gateway's process alive.
      const redisSockets = (): number[] =>
        (process as unknown as { _getActiveHandles(): unknown[] })
          ._getActiveHandles()
          .filter((x): x is net.Socket => x instanceof net.Socket && x.remotePort === 6379)
          .map((x) => x.localPort ?? 0)
      // QUIT is answered before the socket closes: give them a moment.
      await waitFor(() => redisSockets().length === 0, 1000, { every: 20, what: 'the Redis sockets to close' })
      expect(redisSockets()).toEqual([])
    } finally {
      if (!closed) await h.close()
      await deleteRedisKeys(prefix)
    }
  })

  it('refuses with 502 and sends nothing when the upstream request was ended before the gateway prepared it', async () => {
    // An upstream that counts every byte it is sent.
    let received = 0
    const sink = net.createServer((socket) => {
      socket.on('data', (d) => (received += d.length))
      socket.on('error', () => undefined)
    })
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve))
    const logs: string[] = []
    const note = (m: string, meta?: object) => void logs.push(JSON.stringify({ m, ...meta }))
    const handler = gatehouseProxy({
      providers: { openai: { baseUrl: `http://127.0.0.1:${(sink.address() as AddressInfo).port}`, apiKey: `sk-proj-${randomBytes(24).toString('base64url')}` } },
      timeouts: { connect: 2000, firstByte: 2000, idle: 2000 },
      logger: { error: note, warn: note, info: note, debug: note },
    })
    const app = express()
    // A layer that takes the body and hands on with the stream's 'end' still pending, from a
    // microtask after a callback: the proxy's pipe then ends the upstream request first.
    app.use((req, _res, next) => void setTimeout(() => void Promise.resolve().then(() => (req.read(), next())), 5))
    app.use(handler)
    const gw = await listen(app)
    const clientKey = `gate_live_${randomBytes(32).toString('base64url')}`
    try {
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${clientKey}` },
        body: JSON.stringify(openaiBody()),
      })
      expect(res.status).toBe(502)
      const text = await res.text()
      expect(JSON.parse(text)).toMatchObject({ error: { type: expect.any(String), message: expect.stringContaining('openai') } })
      expect(text).not.toContain(clientKey)
      await sleep(100)
      expect(received).toBe(0)
      expect(logs.join('\n')).toContain('GH_PROXY_REQUEST_ENDED')
      expect(logs.join('\n')).not.toContain(clientKey)
    } finally {
      await gw.close()
      handler.close()
      await new Promise((r) => sink.close(r))
    }
  })
})
