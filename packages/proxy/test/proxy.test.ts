import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { createHash, randomBytes } from 'node:crypto'
import express, { type RequestHandler } from 'express'
import { defaultEndpointIds, PROVIDERS, type SecurityEvent } from '@gatehouse/core'
import { listen, MockUpstream, rawHttp, sleep } from '@gatehouse/testing'
import { gatehouseProxy, type ProxyOptions } from '@gatehouse/proxy'
import { providerForSuite } from './suite'

/** The proxy mounted alone in an Express app, as a developer would, in front of a mock provider. */

const key = (prefix: string): string => prefix + randomBytes(30).toString('base64url')
const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }

async function mount(options: Partial<ProxyOptions> & { providers: ProxyOptions['providers'] }, before: RequestHandler[] = []) {
  const events: SecurityEvent[] = []
  const proxy = gatehouseProxy({ onEvent: (e) => events.push(e), ...options })
  const app = express()
  for (const mw of before) app.use(mw)
  app.use(proxy)
  app.use((_req, res) => void res.status(418).json({ notOurs: true }))
  const server = await listen(app)
  return { url: server.url, events, close: async () => (await server.close(), proxy.close()) }
}

/** A raw request with exactly these headers (plus Host, Content-Length, Connection: close); its final status. */
async function raw(url: string, method: string, path: string, headers: Record<string, string>, body?: string): Promise<number> {
  const all: Record<string, string> = { host: new URL(url).host, ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) }
  all.connection = [headers.connection, 'close'].filter(Boolean).join(', ')
  const head = `${method} ${path} HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`
  return (await rawHttp(url, head + Buffer.from(body ?? '', 'utf8').toString('latin1'))).status
}

/** A concrete path for a registry pattern. */
const concrete = (path: string): string => path.replace(/:model(:[A-Za-z]+)?/g, (_m, verb: string | undefined) => `gemini-2.0-flash${verb ?? ''}`).replace(/:model|:id/g, 'x1')

const keys = { openai: key('sk-proj-'), claude: key('sk-ant-api03-'), gemini: key('AIza') }

/**
 * A mock provider for the tests of one describe block (started before them, reset before each,
 * closed after), and the providers option that points every provider at it with `keys`.
 */
function mockProvider() {
  const suite = providerForSuite()
  return {
    get upstream(): MockUpstream {
      return suite.upstream
    },
    providers: () => ({
      openai: { baseUrl: suite.upstream.url, apiKey: keys.openai },
      claude: { baseUrl: suite.upstream.url, apiKey: keys.claude },
      gemini: { baseUrl: suite.upstream.url, apiKey: keys.gemini },
    }),
  }
}

describe('gatehouseProxy alone: endpoints', () => {
  const mock = mockProvider()
  const { providers } = mock
  it('forwards every default endpoint of every provider, and refuses every other one before the provider sees it', async () => {
    const gw = await mount({ providers: providers() })
    try {
      for (const p of Object.values(PROVIDERS)) {
        for (const e of p.endpoints) {
          mock.upstream.reset()
          const headers: Record<string, string> = { 'content-type': 'application/json', ...(p.name === 'claude' ? { 'anthropic-version': '2023-06-01' } : {}) }
          const path = `/${p.name}${concrete(e.path)}`
          const status = await raw(gw.url, e.method, path, headers, e.method === 'POST' ? '{}' : undefined)
          if (e.default) {
            expect([e.id, mock.upstream.requests.length]).toEqual([e.id, 1])
            expect(mock.upstream.last!.path).toBe(concrete(e.path))
          } else {
            expect([e.id, status, mock.upstream.requests.length]).toEqual([e.id, 403, 0])
          }
        }
      }
      const denied = gw.events.filter((e) => e.result === 'endpoint_denied')
      expect(denied.length).toBe(Object.values(PROVIDERS).flatMap((p) => p.endpoints.filter((e) => !e.default)).length)
      // Unknown paths and methods are refused too, and a path for no provider is passed on.
      expect(await raw(gw.url, 'GET', '/openai/v1/organization/users', {})).toBe(403)
      expect(await raw(gw.url, 'PUT', '/v1/chat/completions', {}, '{}')).toBe(403)
      expect(await raw(gw.url, 'GET', '/elsewhere', {})).toBe(418)
      expect(mock.upstream.requests).toHaveLength(0)
    } finally {
      await gw.close()
    }
  })

  it("narrows and widens with providers.<name>.endpoints, and per request with endpointsFor", async () => {
    const gw = await mount({
      providers: { openai: { baseUrl: mock.upstream.url, apiKey: keys.openai, endpoints: ['openai.embeddings', 'openai.files.list'] } },
      endpointsFor: (req) => (req.headers['x-scope'] === 'chat' ? ['openai.chat'] : undefined),
    })
    try {
      expect(await raw(gw.url, 'POST', '/v1/chat/completions', { 'content-type': 'application/json' }, JSON.stringify(chat))).toBe(403)
      expect(await raw(gw.url, 'GET', '/v1/files', {})).not.toBe(403)
      expect(mock.upstream.requests.map((r) => r.path)).toEqual(['/v1/files'])
      expect(await raw(gw.url, 'POST', '/v1/chat/completions', { 'content-type': 'application/json', 'x-scope': 'chat' }, JSON.stringify(chat))).toBe(200)
      expect(await raw(gw.url, 'GET', '/v1/files', { 'x-scope': 'chat' })).toBe(403)
    } finally {
      await gw.close()
    }
  })
})

describe('gatehouseProxy alone: headers and masking', () => {
  const mock = mockProvider()

  it('sends the allowlisted headers and the credential, and nothing else a client chose', async () => {
    const oauth = key('sk-ant-oat01-')
    const gw = await mount({
      providers: { claude: { baseUrl: mock.upstream.url } },
      credential: () => ({ headers: { authorization: `Bearer ${oauth}`, 'anthropic-beta': 'oauth-2025-04-20' } }),
    })
    try {
      const status = await raw(gw.url, 'POST', '/v1/messages', {
        'content-type': 'application/json',
        accept: 'application/json',
        'user-agent': 'sdk/1.0',
        'anthropic-version': '2023-06-01',
        'anthropic-beta': 'files-api-2025-04-14',
        'x-stainless-lang': 'js',
        'idempotency-key': 'idem-1',
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        'x-api-key': 'gate_live_client_key_never_forwarded_0000000000000',
        authorization: 'Bearer client-token-never-forwarded',
        cookie: 's=1',
        'x-forwarded-for': '6.6.6.6',
        forwarded: 'for=6.6.6.6',
        'x-real-ip': '6.6.6.6',
        via: '1.1 evil',
        'x-device-fingerprint': 'client',
        'openai-organization': 'org-victim',
        'x-custom': 'nope',
        expect: '100-continue',
        te: 'trailers',
        trailer: 'x-late',
        upgrade: 'websocket',
      }, JSON.stringify({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }))
      expect(status).toBe(200)
      const h = mock.upstream.last!.headers
      expect(h.authorization).toBe(`Bearer ${oauth}`)
      expect(h['anthropic-beta']).toBe('files-api-2025-04-14,oauth-2025-04-20')
      expect(h['anthropic-version']).toBe('2023-06-01')
      expect(h['x-stainless-lang']).toBe('js')
      expect(h['idempotency-key']).toBe('idem-1')
      expect(h.traceparent).toMatch(/^00-/)
      expect(h['user-agent']).toBe('sdk/1.0')
      expect(h['accept-encoding']).toBe('identity')
      for (const name of ['x-api-key', 'cookie', 'x-forwarded-for', 'forwarded', 'x-real-ip', 'via', 'x-device-fingerprint', 'openai-organization', 'x-custom', 'expect', 'te', 'trailer', 'upgrade']) {
        expect([name, h[name]]).toEqual([name, undefined])
      }
      // A listed header named in Connection is hop-by-hop for that message: dropped.
      mock.upstream.reset()
      await raw(gw.url, 'POST', '/v1/messages', { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', connection: 'anthropic-version' }, '{}')
      expect(mock.upstream.last!.headers['anthropic-version']).toBeUndefined()
    } finally {
      await gw.close()
    }
  })

  it.each([false, true])('relays only allowlisted response headers, and masks the injected key in headers and bodies on every status (batching %s)', async (batching) => {
    let status = 200
    const echo = http.createServer((req, res) => {
      const got = String(req.headers.authorization ?? '')
      req.resume()
      req.on('end', () => {
        res.setHeader('x-request-id', got)
        res.setHeader('x-ratelimit-remaining-requests', '9')
        res.setHeader('x-should-retry', 'false')
        res.setHeader('openai-organization', 'org-operator')
        res.setHeader('set-cookie', 'a=1')
        res.setHeader('x-internal', 'pod-1')
        res.setHeader('content-type', 'application/json')
        res.statusCode = status
        res.end(JSON.stringify({ echoed: got, error: status >= 400 ? { message: `bad ${got}` } : undefined }))
      })
    })
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r))
    const secret = key('sk-proj-')
    const gw = await mount({ providers: { openai: { baseUrl: `http://127.0.0.1:${(echo.address() as AddressInfo).port}`, apiKey: secret } }, batching })
    try {
      for (status of [200, 400, 500]) {
        const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat) })
        expect(res.status).toBe(status)
        const text = await res.text()
        expect(text).not.toContain(secret)
        expect(text).toContain('****')
        // Masked whole: the length changed, and the Content-Length says the new one.
        expect(res.headers.get('content-length')).toBe(String(Buffer.byteLength(text)))
        expect(res.headers.get('transfer-encoding')).toBeNull()
        expect(res.headers.get('x-request-id')).not.toContain(secret)
        expect(res.headers.get('x-should-retry')).toBe('false')
        // The provider's account-wide figures stay behind unless the operator relays them (below).
        for (const name of ['x-ratelimit-remaining-requests', 'openai-organization', 'set-cookie', 'x-internal']) expect(res.headers.get(name)).toBeNull()
      }
    } finally {
      await gw.close()
      await new Promise((r) => echo.close(r))
    }
  })

  it.each([false, true])('relays a stream whole and in order: events written in one turn go out together, later ones as they come, the key masked across writes (batching %s)', async (batching) => {
    const secret = key('sk-proj-')
    const ev = (i: number): string => `data: {"choices":[{"delta":{"content":"e${i}"}}]}\n\n`
    const arrivals: number[] = []
    const sse = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        // One turn: ten events, then the key written in two halves (one event), then more events.
        for (let i = 0; i < 10; i++) res.write(ev(i))
        res.write(`data: {"echo":"${secret.slice(0, 12)}`)
        res.write(`${secret.slice(12)}"}\n\n`)
        res.write(ev(10))
        // Later turns: each event on its own.
        setTimeout(() => {
          res.write(ev(11))
          setTimeout(() => res.end('data: [DONE]\n\n'), 60)
        }, 60)
      })
    })
    await new Promise<void>((r) => sse.listen(0, '127.0.0.1', r))
    const gw = await mount({ providers: { openai: { baseUrl: `http://127.0.0.1:${(sse.address() as AddressInfo).port}`, apiKey: secret } }, batching })
    try {
      const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...chat, stream: true }) })
      const reader = res.body!.getReader()
      const decoder = new TextDecoder()
      let text = ''
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        const part = decoder.decode(value, { stream: true })
        if (part.includes('"e11"') || part.includes('[DONE]')) arrivals.push(Date.now())
        text += part
      }
      const expected = Array.from({ length: 10 }, (_v, i) => ev(i)).join('') + 'data: {"echo":"'
      expect(text.startsWith(expected)).toBe(true)
      expect(text).not.toContain(secret)
      expect(text).not.toContain(secret.slice(12))
      expect(text).toMatch(/data: \{"echo":"[^"]*\*{4}[^"]*"\}\n\n/)
      expect(text.endsWith(`${ev(10)}${ev(11)}data: [DONE]\n\n`)).toBe(true)
      // The later events were not held for the end: [DONE] came about 60 ms after e11.
      expect(arrivals.length).toBe(2)
      expect(arrivals[1]! - arrivals[0]!).toBeGreaterThanOrEqual(40)
    } finally {
      await gw.close()
      await new Promise((r) => sse.close(r))
    }
  })
})

describe('gatehouseProxy alone: Idempotency-Key per tenant', () => {
  const mock = mockProvider()

  it("binds the client's key to the authenticated client key (the provider keeps them per shared account); passes it as it is without one", async () => {
    // What client-auth does: the authenticated key's id in res.locals.gatehouse.
    const tenant: RequestHandler = (req, res, next) => {
      const id = req.headers['x-test-tenant']
      if (typeof id === 'string') res.locals.gatehouse = { ...(res.locals.gatehouse ?? {}), clientKeyId: id }
      next()
    }
    const gw = await mount({ providers: mock.providers() }, [tenant])
    try {
      const sentFor = async (tenantId: string | undefined): Promise<unknown> => {
        const res = await fetch(`${gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': 'retry-7', ...(tenantId ? { 'x-test-tenant': tenantId } : {}) },
          body: JSON.stringify(chat),
        })
        expect(res.status).toBe(200)
        return mock.upstream.last!.headers['idempotency-key']
      }
      const expected = (t: string): string => `gh-${createHash('sha256').update(t).update('\0').update('retry-7').digest('base64url')}`
      expect(await sentFor('key_a')).toBe(expected('key_a'))
      expect(await sentFor('key_a')).toBe(expected('key_a'))
      expect(await sentFor('key_b')).toBe(expected('key_b'))
      expect(expected('key_a')).not.toBe(expected('key_b'))
      expect(await sentFor(undefined)).toBe('retry-7')
    } finally {
      await gw.close()
    }
  })
})

describe('gatehouseProxy alone: end-user identifiers per tenant', () => {
  const mock = mockProvider()
  const scoped = (t: string, v: string): string => `gh-${createHash('sha256').update(t).update('\0').update(v).digest('base64url')}`
  const tenant: RequestHandler = (req, res, next) => {
    const id = req.headers['x-test-tenant']
    if (typeof id === 'string') res.locals.gatehouse = { ...(res.locals.gatehouse ?? {}), clientKeyId: id }
    next()
  }
  /** What the provider received for `body` sent to `path` as tenant `t` (none: no client key). */
  const sentBody = async (url: string, path: string, body: string, t?: string): Promise<string> => {
    const res = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', ...(t ? { 'x-test-tenant': t } : {}) },
      body,
    })
    expect(res.status).toBe(200)
    await res.arrayBuffer()
    return mock.upstream.last!.body.toString('utf8')
  }

  it("gives every request its tenant's identifiers: added when none is named (every other byte as sent), bound to the key when one is", async () => {
    const gw = await mount({ providers: mock.providers(), body: (req) => (req as unknown as { raw?: Buffer }).raw }, [
      express.raw({ type: 'application/json' }),
      (req, _res, next) => {
        ;(req as unknown as { raw?: Buffer }).raw = req.body as Buffer
        req.body = JSON.parse((req.body as Buffer).toString('utf8')) as unknown
        next()
      },
      tenant,
    ])
    try {
      const plain = '{ "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}] }'
      const own = scoped('key_a', '')
      expect(await sentBody(gw.url, '/v1/chat/completions', plain, 'key_a')).toBe(`{ "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}] ,"safety_identifier":"${own}","prompt_cache_key":"${own}"}`)
      // Named: bound to the key, so key_b's "end-user-1" is never key_a's.
      const named = JSON.stringify({ ...chat, safety_identifier: 'end-user-1', user: 'legacy-7', prompt_cache_key: 'faq-v2' })
      expect(JSON.parse(await sentBody(gw.url, '/v1/chat/completions', named, 'key_a'))).toEqual({ ...chat, safety_identifier: scoped('key_a', 'end-user-1'), user: scoped('key_a', 'legacy-7'), prompt_cache_key: scoped('key_a', 'faq-v2') })
      expect(JSON.parse(await sentBody(gw.url, '/v1/chat/completions', named, 'key_b'))).toMatchObject({ safety_identifier: scoped('key_b', 'end-user-1'), prompt_cache_key: scoped('key_b', 'faq-v2') })
      expect(scoped('key_b', 'end-user-1')).not.toBe(scoped('key_a', 'end-user-1'))
      // The older `user` alone names the end user too.
      expect(JSON.parse(await sentBody(gw.url, '/v1/responses', JSON.stringify({ model: 'gpt-4o-mini', input: 'hi', user: 'u9' }), 'key_a'))).toEqual({ model: 'gpt-4o-mini', input: 'hi', user: scoped('key_a', 'u9'), safety_identifier: scoped('key_a', 'u9'), prompt_cache_key: own })
      // A member of that name anywhere in the text (here in a message) takes the serialising path: never a key twice.
      const quoted = JSON.stringify({ ...chat, messages: [{ role: 'user', content: 'what is "prompt_cache_key"?' }] })
      expect(JSON.parse(await sentBody(gw.url, '/v1/chat/completions', quoted, 'key_a'))).toEqual({ ...JSON.parse(quoted), safety_identifier: own, prompt_cache_key: own })
      // Anthropic: metadata.user_id, added or bound.
      const msg = { model: 'claude-sonnet-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }
      expect(JSON.parse(await sentBody(gw.url, '/v1/messages', JSON.stringify(msg), 'key_a'))).toEqual({ ...msg, metadata: { user_id: own } })
      expect(JSON.parse(await sentBody(gw.url, '/v1/messages', JSON.stringify({ ...msg, metadata: { user_id: 'alice' } }), 'key_a'))).toEqual({ ...msg, metadata: { user_id: scoped('key_a', 'alice') } })
      // Embeddings take no safety_identifier: only a `user` given is bound.
      const emb = JSON.stringify({ model: 'text-embedding-3-small', input: 'hi' })
      expect(await sentBody(gw.url, '/v1/embeddings', emb, 'key_a')).toBe(emb)
      expect(JSON.parse(await sentBody(gw.url, '/v1/embeddings', JSON.stringify({ model: 'text-embedding-3-small', input: 'hi', user: 'u1' }), 'key_a'))).toMatchObject({ user: scoped('key_a', 'u1') })
      // A stream gets both its identifier and the usage request, in valid JSON.
      expect(JSON.parse(await sentBody(gw.url, '/v1/chat/completions', JSON.stringify({ ...chat, stream: true }), 'key_a'))).toEqual({ ...chat, stream: true, safety_identifier: own, prompt_cache_key: own, stream_options: { include_usage: true } })
      // Without a client key, the body goes as sent.
      expect(await sentBody(gw.url, '/v1/chat/completions', named)).toBe(named)
    } finally {
      await gw.close()
    }
  })

  it("binds each request of a message batch as a message is, and leaves a batch's other members as sent", async () => {
    const providers = { ...mock.providers(), claude: { ...mock.providers().claude, endpoints: ['claude.messages', 'claude.batches.create'] } }
    const gw = await mount({ providers }, [express.json(), tenant])
    try {
      const params = { model: 'claude-sonnet-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }
      const batch = { requests: [{ custom_id: 'a', params }, { custom_id: 'b', params: { ...params, metadata: { user_id: 'alice' } } }, { custom_id: 'c' }] }
      const sent = JSON.parse(await sentBody(gw.url, '/v1/messages/batches', JSON.stringify(batch), 'key_a')) as typeof batch
      expect(sent).toEqual({
        requests: [
          { custom_id: 'a', params: { ...params, metadata: { user_id: scoped('key_a', '') } } },
          { custom_id: 'b', params: { ...params, metadata: { user_id: scoped('key_a', 'alice') } } },
          { custom_id: 'c' },
        ],
      })
      expect(JSON.stringify(sent)).not.toContain('alice')
    } finally {
      await gw.close()
    }
  })

  it('leaves bodies as sent with tenantEndUsers: false', async () => {
    const gw = await mount({ providers: mock.providers(), tenantEndUsers: false }, [express.json(), tenant])
    try {
      const named = JSON.stringify({ ...chat, safety_identifier: 'end-user-1' })
      expect(JSON.parse(await sentBody(gw.url, '/v1/chat/completions', named, 'key_a'))).toEqual({ ...chat, safety_identifier: 'end-user-1' })
    } finally {
      await gw.close()
    }
  })
})

describe("gatehouseProxy alone: the provider's account-wide rate-limit headers", () => {
  /** A provider that answers with its account's rate-limit families, on a 200 (JSON or SSE) or a 429. */
  async function accountLimitsUpstream(secret: string) {
    const up = http.createServer((req, res) => {
      let body = ''
      req.on('data', (c: Buffer) => (body += c.toString()))
      req.on('end', () => {
        const stream = body.includes('"stream":true')
        res.setHeader('x-ratelimit-remaining-tokens', '1234')
        res.setHeader('anthropic-ratelimit-tokens-remaining', '5678')
        // A provider that echoes the key it was sent in a header: masked even when relayed.
        res.setHeader('anthropic-ratelimit-requests-reset', `2026-12-04T00:00:00Z ${secret}`)
        res.statusCode = body.includes('"limited"') ? 429 : 200
        res.setHeader('content-type', stream && res.statusCode === 200 ? 'text/event-stream' : 'application/json')
        res.end(stream && res.statusCode === 200 ? 'data: {"choices":[]}\n\ndata: [DONE]\n\n' : '{"error":{"message":"limited"}}')
      })
    })
    await new Promise<void>((r) => up.listen(0, '127.0.0.1', r))
    return { url: `http://127.0.0.1:${(up.address() as AddressInfo).port}`, close: () => new Promise((r) => up.close(r)) }
  }
  const asks = [
    { path: '/v1/chat/completions', body: { ...chat } },
    { path: '/v1/chat/completions', body: { ...chat, stream: true } },
    { path: '/v1/chat/completions', body: { ...chat, user: 'limited' } },
    { path: '/v1/messages', body: { model: 'claude-sonnet-4-5', max_tokens: 8, messages: chat.messages } },
    { path: '/v1/messages', body: { model: 'claude-sonnet-4-5', max_tokens: 8, stream: true, messages: chat.messages } },
  ]

  it.each([false, true])('keeps them from the client by default: they show every tenant\'s use of the shared account (batching %s)', async (batching) => {
    const secret = key('sk-ant-api03-')
    const up = await accountLimitsUpstream(secret)
    const gw = await mount({ providers: { openai: { baseUrl: up.url, apiKey: key('sk-proj-') }, claude: { baseUrl: up.url, apiKey: secret } }, batching })
    try {
      for (const ask of asks) {
        const res = await fetch(`${gw.url}${ask.path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ask.body) })
        expect([ask.path, res.status]).toEqual([ask.path, ask.body.model === 'gpt-4o-mini' && 'user' in ask.body ? 429 : 200])
        await res.text()
        const relayed = [...res.headers.keys()].filter((name) => name.includes('ratelimit'))
        expect([ask.path, relayed]).toEqual([ask.path, []])
      }
    } finally {
      await gw.close()
      await up.close()
    }
  })

  it.each([false, true])('relays them, masked, for a provider whose operator sets relayRateLimitHeaders (batching %s)', async (batching) => {
    const secret = key('sk-ant-api03-')
    const up = await accountLimitsUpstream(secret)
    const gw = await mount({
      providers: { openai: { baseUrl: up.url, apiKey: key('sk-proj-') }, claude: { baseUrl: up.url, apiKey: secret, relayRateLimitHeaders: true } },
      batching,
    })
    try {
      for (const ask of asks) {
        const res = await fetch(`${gw.url}${ask.path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ask.body) })
        await res.text()
        if (ask.path === '/v1/messages') {
          // Each provider's own family only, and the echoed key masked.
          expect(res.headers.get('anthropic-ratelimit-tokens-remaining')).toBe('5678')
          expect(res.headers.get('anthropic-ratelimit-requests-reset')).toMatch(/^2026-12-04T00:00:00Z \S*\*\*\*\*/)
          expect(res.headers.get('anthropic-ratelimit-requests-reset')).not.toContain(secret)
          expect(res.headers.get('x-ratelimit-remaining-tokens')).toBeNull()
        } else {
          // OpenAI's operator did not turn it on.
          expect([...res.headers.keys()].filter((name) => name.includes('ratelimit'))).toEqual([])
        }
      }
    } finally {
      await gw.close()
      await up.close()
    }
  })
})

describe('gatehouseProxy alone: the headers of the layers before it', () => {
  it.each([false, true])('keeps the headers the layers before it set: the upstream never downgrades Cache-Control or replaces a key\'s own rate-limit figures (batching %s)', async (batching) => {
    const up = http.createServer((req, res) => {
      let body = ''
      req.on('data', (c: Buffer) => (body += c.toString()))
      req.on('end', () => {
        const stream = body.includes('"stream":true')
        res.setHeader('cache-control', 'no-cache')
        res.setHeader('x-ratelimit-remaining-requests', '4999')
        res.setHeader('x-ratelimit-limit-tokens', '2000000')
        res.setHeader('x-request-id', 'req_upstream')
        res.setHeader('content-type', stream ? 'text/event-stream' : 'application/json')
        res.end(stream ? 'data: {"choices":[]}\n\ndata: [DONE]\n\n' : '{"ok":true}')
      })
    })
    await new Promise<void>((r) => up.listen(0, '127.0.0.1', r))
    // What the gateway's own layers set before the proxy: its cache policy and the key's own limits.
    const layer: RequestHandler = (_req, res, next) => {
      res.setHeader('Cache-Control', 'no-store')
      res.setHeader('x-ratelimit-remaining-requests', '7')
      next()
    }
    // An operator who relays the provider's account figures: the key's own still win.
    const gw = await mount({ providers: { openai: { baseUrl: `http://127.0.0.1:${(up.address() as AddressInfo).port}`, apiKey: key('sk-proj-'), relayRateLimitHeaders: true } }, batching }, [layer])
    try {
      for (const stream of [false, true]) {
        const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...chat, stream }) })
        expect(res.status).toBe(200)
        await res.text()
        expect(res.headers.get('cache-control')).toBe('no-store')
        expect(res.headers.get('x-ratelimit-remaining-requests')).toBe('7')
        // What the layers did not set is relayed as the allowlist says, and the body's own headers are the upstream's.
        expect(res.headers.get('x-ratelimit-limit-tokens')).toBe('2000000')
        expect(res.headers.get('x-request-id')).toBe('req_upstream')
        expect(res.headers.get('content-type')).toBe(stream ? 'text/event-stream' : 'application/json')
      }
    } finally {
      await gw.close()
      await new Promise((r) => up.close(r))
    }
  })
})

describe('gatehouseProxy alone: credentials and bodies', () => {
  const mock = mockProvider()

  it('rejects the credential only on the provider invalid-key answer to a model call', async () => {
    let answer: { status: number; body: unknown } = { status: 200, body: {} }
    const up = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        res.writeHead(answer.status, { 'content-type': 'application/json' })
        res.end(JSON.stringify(answer.body))
      })
    })
    await new Promise<void>((r) => up.listen(0, '127.0.0.1', r))
    const calls: string[] = []
    const gw = await mount({
      providers: { openai: { baseUrl: `http://127.0.0.1:${(up.address() as AddressInfo).port}`, endpoints: ['openai.chat', 'openai.files.list'] } },
      credential: () => ({ headers: { authorization: `Bearer ${keys.openai}` }, report: (s) => void calls.push(`report ${s}`), reject: (r) => void calls.push(`reject ${r}`) }),
    })
    const invalid = { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } }
    try {
      const cases: Array<[string, string, { status: number; body: unknown }, string]> = [
        ['POST', '/v1/chat/completions', { status: 401, body: invalid }, 'reject invalid_credential'],
        ['POST', '/v1/chat/completions', { status: 403, body: { error: { code: 'unsupported_country_region_territory' } } }, 'report 403'],
        ['POST', '/v1/chat/completions', { status: 401, body: { error: { code: 'missing_scope' } } }, 'report 401'],
        ['GET', '/v1/files', { status: 401, body: invalid }, 'report 401'],
        ['POST', '/v1/chat/completions', { status: 200, body: { ok: true } }, 'report 200'],
      ]
      for (const [method, path, a, expected] of cases) {
        answer = a
        calls.length = 0
        await raw(gw.url, method, path, { 'content-type': 'application/json' }, method === 'POST' ? JSON.stringify(chat) : undefined)
        expect([method, path, a.status, calls]).toEqual([method, path, a.status, [expected]])
      }
    } finally {
      await gw.close()
      await new Promise((r) => up.close(r))
    }
  })

  it('sends nothing without a credential: 503 naming the provider', async () => {
    const gw = await mount({ providers: { openai: { baseUrl: mock.upstream.url } }, credential: () => undefined })
    try {
      const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat) })
      expect(res.status).toBe(503)
      expect(((await res.json()) as { error: { message: string } }).error.message).toContain('"openai"')
      expect(mock.upstream.requests).toHaveLength(0)
      expect(gw.events).toEqual([expect.objectContaining({ event_type: 'credential_access', result: 'unavailable' })])
    } finally {
      await gw.close()
    }
  })

  it('joins a baseUrl path to the request path', async () => {
    const gw = await mount({ providers: { openai: { baseUrl: `${mock.upstream.url}/prefix/openai/`, apiKey: keys.openai } } })
    try {
      await fetch(`${gw.url}/v1/chat/completions?x=1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat) })
      expect(mock.upstream.last!.url).toBe('/prefix/openai/v1/chat/completions?x=1')
    } finally {
      await gw.close()
    }
  })

  it('sends the body option, a body parser’s JSON, or the stream', async () => {
    const given = Buffer.from(JSON.stringify({ ...chat, given: true }))
    const a = await mount({ providers: { openai: { baseUrl: mock.upstream.url, apiKey: keys.openai } }, body: () => given })
    const b = await mount({ providers: { openai: { baseUrl: mock.upstream.url, apiKey: keys.openai } } }, [express.json()])
    const c = await mount({ providers: { openai: { baseUrl: mock.upstream.url, apiKey: keys.openai } } })
    try {
      const send = (url: string): Promise<Response> => fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat) })
      await send(a.url)
      expect(mock.upstream.last!.body.equals(given)).toBe(true)
      expect(mock.upstream.last!.headers['content-length']).toBe(String(given.length))
      await send(b.url)
      expect(mock.upstream.last!.json).toEqual(chat)
      await send(c.url)
      expect(mock.upstream.last!.body.toString()).toBe(JSON.stringify(chat))
    } finally {
      await a.close()
      await b.close()
      await c.close()
    }
  })

  it('answers the same with batching on and off, JSON and SSE', async () => {
    const off = await mount({ providers: { openai: { baseUrl: mock.upstream.url, apiKey: keys.openai } } })
    const on = await mount({ providers: { openai: { baseUrl: mock.upstream.url, apiKey: keys.openai } }, batching: true })
    try {
      for (const body of [chat, { ...chat, stream: true, stream_options: { include_usage: true } }]) {
        const strip = (t: string): string => t.replace(/"(id|created)":("[^"]*"|\d+)/g, '')
        const r1 = await fetch(`${off.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
        const r2 = await fetch(`${on.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
        expect(r2.status).toBe(r1.status)
        expect(strip(await r2.text())).toBe(strip(await r1.text()))
      }
    } finally {
      await off.close()
      await on.close()
    }
  })
})

describe('what the proxy tells the limits: upstreamReached, upstreamStatus, usage', () => {
  /** Records the locals when the response is done (as the limiters read them). */
  const observe = (seen: Array<Record<string, unknown>>): RequestHandler => (_req, res, next) => {
    const done = (): void => {
      const l = (res.locals as { gatehouse?: Record<string, unknown> }).gatehouse ?? {}
      seen.push({ upstreamReached: l.upstreamReached, upstreamStatus: l.upstreamStatus, usage: l.usage })
    }
    res.once('close', done)
    next()
  }

  it.each([false, true])('sets them on success, upstream error, refused connection and no credential (batching %s)', async (batching) => {
    const upstream = await MockUpstream.start()
    const seen: Array<Record<string, unknown>> = []
    const dead = net.createServer()
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r))
    const deadPort = (dead.address() as AddressInfo).port
    await new Promise<void>((r) => dead.close(() => r()))
    const ok = await mount({ batching, providers: { openai: { baseUrl: upstream.url, apiKey: key('sk-proj-') } } }, [observe(seen)])
    const down = await mount({ batching, providers: { openai: { baseUrl: `http://127.0.0.1:${deadPort}`, apiKey: key('sk-proj-') } } }, [observe(seen)])
    const none = await mount({ batching, providers: { openai: { baseUrl: upstream.url } } }, [observe(seen)])
    const post = (url: string) => fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat) }).then(async (r) => (await r.arrayBuffer(), r.status))
    try {
      upstream.behave({ usage: { input: 3, output: 4 } })
      expect(await post(ok.url)).toBe(200)
      upstream.behave({ failStatus: 400 })
      expect(await post(ok.url)).toBe(400)
      expect(await post(down.url)).toBe(502)
      expect(await post(none.url)).toBe(503)
      await sleep(50)
      expect(seen).toEqual([
        { upstreamReached: true, upstreamStatus: 200, usage: { inputTokens: 3, outputTokens: 4 } },
        { upstreamReached: true, upstreamStatus: 400, usage: undefined },
        { upstreamReached: false, upstreamStatus: undefined, usage: undefined },
        { upstreamReached: false, upstreamStatus: undefined, usage: undefined },
      ])
    } finally {
      await ok.close()
      await down.close()
      await none.close()
      await upstream.close()
    }
  })

  it('leaves usage unset for a stream the client cut short, though message_start carried figures', async () => {
    const upstream = await MockUpstream.start()
    const seen: Array<Record<string, unknown>> = []
    const m = await mount({ providers: { claude: { baseUrl: upstream.url, apiKey: key('sk-ant-api03-') } } }, [observe(seen)])
    try {
      upstream.behave({ chunks: 40, chunkIntervalMs: 30, usage: { input: 50, output: 70 } })
      const controller = new AbortController()
      const res = await fetch(`${m.url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
        body: JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
        signal: controller.signal,
      })
      const reader = res.body!.getReader()
      const first = await reader.read()
      expect(Buffer.from(first.value!).toString()).toContain('message_start')
      controller.abort()
      await sleep(100) // real time: for the client's abort to reach the gateway over the socket
      expect(seen).toEqual([{ upstreamReached: true, upstreamStatus: 200, usage: undefined }])
    } finally {
      await m.close()
      await upstream.close()
    }
  })
})

describe('usage from every answer shape', () => {
  const observe = (seen: Array<unknown>): RequestHandler => (_req, res, next) => {
    res.once('close', () => seen.push((res.locals as { gatehouse?: { usage?: unknown } }).gatehouse?.usage))
    next()
  }

  it('asks OpenAI for usage on a stream that did not, meters it, and relays the stream the client asked for', async () => {
    const upstream = await MockUpstream.start()
    const seen: unknown[] = []
    // The body must be known to be rewritten: a body parser's (or request-guard's) result.
    const m = await mount({ providers: { openai: { baseUrl: upstream.url, apiKey: key('sk-proj-') } } }, [express.json(), observe(seen)])
    const stream = (extra: object) =>
      fetch(`${m.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...chat, stream: true, ...extra }) }).then((r) => r.text())
    try {
      upstream.behave({ chunks: 4, usage: { input: 12, output: 34 } })
      const text = await stream({})
      const sent = JSON.parse(upstream.last!.body.toString('utf8')) as { stream_options?: unknown }
      expect(sent.stream_options).toEqual({ include_usage: true })
      expect(text).not.toContain('"usage":{')
      expect(text).toContain('data: [DONE]')
      // The role chunk, the 4 content chunks and the final one: no usage-only event.
      expect(text.match(/^data: \{/gm)?.length).toBe(1 + 4 + 1)
      expect(text).not.toContain('"choices":[]')
      // A client that asked for usage gets it, untouched.
      const asked = await stream({ stream_options: { include_usage: true } })
      expect(asked).toContain('"usage":{')
      await sleep(50)
      expect(seen).toEqual([{ inputTokens: 12, outputTokens: 34 }, { inputTokens: 12, outputTokens: 34 }])
    } finally {
      await m.close()
      await upstream.close()
    }
  })

  it('meters a decompressed copy when an upstream compresses anyway, relaying the bytes it sent', async () => {
    const { gzipSync, gunzipSync } = await import('node:zlib')
    const answer = JSON.stringify({ id: 'x', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' } }], usage: { prompt_tokens: 5, completion_tokens: 6 } })
    const gz = gzipSync(answer)
    const stubborn = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': gz.length })
      res.end(gz)
    })
    await new Promise<void>((r) => stubborn.listen(0, '127.0.0.1', r))
    const seen: unknown[] = []
    const m = await mount({ providers: { openai: { baseUrl: `http://127.0.0.1:${(stubborn.address() as AddressInfo).port}`, apiKey: key('sk-proj-') } } }, [observe(seen)])
    try {
      const got = await new Promise<Buffer>((resolve, reject) => {
        const u = new URL(m.url)
        const req = http.request({ host: u.hostname, port: u.port, path: '/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip' } }, (res) => {
          const parts: Buffer[] = []
          res.on('data', (d: Buffer) => parts.push(d))
          res.on('end', () => resolve(Buffer.concat(parts)))
        })
        req.on('error', reject)
        req.end(JSON.stringify(chat))
      })
      expect(gunzipSync(got).toString()).toBe(answer)
      await sleep(50)
      expect(seen).toEqual([{ inputTokens: 5, outputTokens: 6 }])
    } finally {
      await m.close()
      await new Promise<void>((r) => stubborn.close(() => r()))
    }
  })
})

describe('options', () => {
  const secret = `sk-proj-${randomBytes(20).toString('hex')}`
  it.each<[string, unknown, RegExp]>([
    ['no providers', {}, /providers must name at least one provider/],
    ['an unknown provider', { providers: { mistral: { baseUrl: 'https://x' } } }, /unknown provider "mistral"/],
    ['a bad baseUrl', { providers: { openai: { baseUrl: 'ftp://x' } } }, /providers\.openai\.baseUrl must be an http\(s\) URL/],
    ['userinfo in baseUrl', { providers: { openai: { baseUrl: 'https://u:pw@x' } } }, /must not hold a user name or password/],
    ['an unknown endpoint', { providers: { openai: { baseUrl: 'https://x', endpoints: ['openai.chats'] } } }, /"openai.chats" is not an endpoint of openai \(did you mean openai.chat\?\)/],
    ['an empty endpoint list', { providers: { openai: { baseUrl: 'https://x', endpoints: [] } } }, /endpoints must be a non-empty list/],
    ["another provider's account header", { providers: { claude: { baseUrl: 'https://x', accountHeaders: { 'openai-organization': 'org-1' } } } }, /not an account header of this provider/],
    ['CR/LF in a header value', { providers: { openai: { baseUrl: 'https://x' } }, extraHeaders: { 'x-fp': `${secret}\r\nx-evil: 1` } }, /extraHeaders\.x-fp must be a string without CR, LF or NUL/],
    ['an unknown option', { providers: { openai: { baseUrl: 'https://x' } }, batchin: true }, /batchin/],
    ['a relayRateLimitHeaders that is not a boolean', { providers: { claude: { baseUrl: 'https://x', relayRateLimitHeaders: 'yes' } } }, /providers\.claude\.relayRateLimitHeaders must be true or false \(got "yes"\)/],
    ['a misspelt provider option', { providers: { claude: { baseUrl: 'https://x', relayRateLimitHeader: true } } }, /relayRateLimitHeader is not an option \(did you mean relayRateLimitHeaders\?\)/],
    ['a bad timeout', { providers: { openai: { baseUrl: 'https://x' } }, timeouts: { idle: -1 } }, /timeouts\.idle/],
  ])('refuses %s, naming it and never a secret', (_what, options, message) => {
    let caught: (Error & { code?: string }) | undefined
    try {
      gatehouseProxy(options as ProxyOptions)
    } catch (e) {
      caught = e as Error & { code?: string }
    }
    expect(caught?.message).toMatch(message)
    expect(caught?.code).toMatch(/^GH_PROXY_/)
    expect(caught?.message).not.toContain(secret)
  })

  it('defaults each provider to its model calls', () => {
    expect(defaultEndpointIds('openai')).toEqual(['openai.chat', 'openai.completions', 'openai.responses', 'openai.embeddings', 'openai.moderations', 'openai.models', 'openai.model'])
  })
})
