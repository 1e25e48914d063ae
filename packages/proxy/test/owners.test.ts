import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import express, { type RequestHandler } from 'express'
import Redis from 'ioredis'
import type { SecurityEvent } from '@gatehouse/core'
import { listen } from '@gatehouse/testing'
import { gatehouseProxy, memoryObjectOwners, redisObjectOwners, type ObjectOwners, type ProxyOptions } from '@gatehouse/proxy'
import { providerForSuite } from './suite'

/**
 * Provider objects by client key: a tenant may refer only to the responses, files and containers
 * it made, and never to objects the gateway never sees made. The proxy alone, a layer before it
 * naming the client key as client-auth would.
 */

const apiKey = `sk-proj-${randomBytes(30).toString('base64url')}`

/** What client-auth does: the authenticated key's id in res.locals.gatehouse (here from a test header). */
const tenant: RequestHandler = (req, res, next) => {
  const id = req.headers['x-test-tenant']
  if (typeof id === 'string') res.locals.gatehouse = { ...(res.locals.gatehouse ?? {}), clientKeyId: id }
  next()
}

async function gateway(baseUrl: string, extra: Partial<ProxyOptions> = {}) {
  const events: SecurityEvent[] = []
  const proxy = gatehouseProxy({
    providers: { openai: { baseUrl, apiKey, endpoints: ['openai.responses', 'openai.responses.get', 'openai.responses.delete'] } },
    onEvent: (e) => events.push(e),
    ...extra,
  })
  const app = express()
  app.use(express.json(), tenant, proxy)
  const server = await listen(app)
  const send = async (who: string | undefined, method: string, path: string, body?: object): Promise<{ status: number; json: Record<string, unknown> }> => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...(who ? { 'x-test-tenant': who } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    })
    const text = await res.text()
    return { status: res.status, json: (text.startsWith('{') ? JSON.parse(text) : {}) as Record<string, unknown> }
  }
  return { send, events, close: async () => (await server.close(), proxy.close()) }
}

const create = { model: 'gpt-4o-mini', input: 'hi' }

describe('stored responses by client key', () => {
  const mock = providerForSuite()

  it("lets a key continue, read and delete only the responses it made; another's, an unknown one or a conversation is 404 and never forwarded", async () => {
    const gw = await gateway(mock.upstream.url)
    try {
      const made = await gw.send('key_a', 'POST', '/v1/responses', create)
      expect(made.status).toBe(200)
      const id = made.json.id as string
      expect(id).toMatch(/^resp_/)
      const forwarded = mock.upstream.requests.length

      const foreign = await gw.send('key_b', 'POST', '/v1/responses', { ...create, previous_response_id: id })
      expect(foreign).toEqual({
        status: 404,
        json: { error: { message: `Previous response with id '${id}' not found.`, type: 'invalid_request_error', param: 'previous_response_id', code: 'previous_response_not_found' } },
      })
      for (const [method, path] of [['GET', `/v1/responses/${id}`], ['DELETE', `/v1/responses/${id}`]] as const) {
        const r = await gw.send('key_b', method, path)
        expect([method, r.status, (r.json.error as { message: string }).message]).toEqual([method, 404, `Response with id '${id}' not found.`])
      }
      expect((await gw.send('key_a', 'POST', '/v1/responses', { ...create, previous_response_id: 'resp_never_made' })).status).toBe(404)
      const conversation = await gw.send('key_a', 'POST', '/v1/responses', { ...create, conversation: { id: 'conv_123' } })
      expect([conversation.status, (conversation.json.error as { param: string }).param]).toEqual([404, 'conversation'])
      expect(mock.upstream.requests).toHaveLength(forwarded)
      const denied = gw.events.filter((e) => e.result === 'object_denied')
      expect(denied.map((e) => [e.user_id, e.details?.param])).toEqual([
        ['key_b', 'previous_response_id'],
        ['key_b', 'path'],
        ['key_b', 'path'],
        ['key_a', 'previous_response_id'],
        ['key_a', 'conversation'],
      ])

      // Its maker continues it, reads it (the mock has no stored responses: its own 404 comes back, forwarded).
      expect((await gw.send('key_a', 'POST', '/v1/responses', { ...create, previous_response_id: id })).status).toBe(200)
      expect(mock.upstream.last!.json).toMatchObject({ previous_response_id: id })
      await gw.send('key_a', 'GET', `/v1/responses/${id}`)
      expect(mock.upstream.last!.path).toBe(`/v1/responses/${id}`)
      // Without a client key (a developer's own app, no tenants) nothing is checked.
      expect((await gw.send(undefined, 'POST', '/v1/responses', { ...create, previous_response_id: 'resp_any' })).status).toBe(200)
    } finally {
      await gw.close()
    }
  })

  it('records a response made by a stream, from its response.created event', async () => {
    // A provider streaming the Responses API's events, as OpenAI does.
    const stream = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.write('event: response.created\ndata: {"type":"response.created","response":{"id":"resp_streamed_1","object":"response","status":"in_progress","output":[]}}\n\n')
        res.end('event: response.completed\ndata: {"type":"response.completed","response":{"id":"resp_streamed_1","status":"completed","usage":{"input_tokens":3,"output_tokens":2,"total_tokens":5}}}\n\n')
      })
    })
    await new Promise<void>((r) => stream.listen(0, '127.0.0.1', r))
    const gw = await gateway(`http://127.0.0.1:${(stream.address() as AddressInfo).port}`)
    try {
      expect((await gw.send('key_a', 'POST', '/v1/responses', { ...create, stream: true })).status).toBe(200)
      expect((await gw.send('key_b', 'POST', '/v1/responses', { ...create, previous_response_id: 'resp_streamed_1' })).status).toBe(404)
      expect((await gw.send('key_a', 'POST', '/v1/responses', { ...create, previous_response_id: 'resp_streamed_1' })).status).toBe(200)
    } finally {
      await gw.close()
      await new Promise((r) => stream.close(r))
    }
  })

  it('shares owners across gateways through Redis, and refuses (503, not forwarded) when they cannot be read', async () => {
    const redis = new Redis({ host: '127.0.0.1', port: 6379, maxRetriesPerRequest: 1 })
    const prefix = `gh-owners-${randomBytes(4).toString('hex')}:`
    const down = new Redis({ host: '127.0.0.1', port: 1, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null, lazyConnect: true })
    down.on('error', () => undefined)
    const [one, two, broken] = [
      await gateway(mock.upstream.url, { objectOwners: redisObjectOwners(redis, prefix) }),
      await gateway(mock.upstream.url, { objectOwners: redisObjectOwners(redis, prefix) }),
      await gateway(mock.upstream.url, { objectOwners: redisObjectOwners(down, prefix) }),
    ]
    try {
      const id = (await one.send('key_a', 'POST', '/v1/responses', create)).json.id as string
      await new Promise((r) => setTimeout(r, 50)) // the owner's write is not awaited by the answer
      expect(await redis.ttl(`${prefix}owner:${id}`)).toBeGreaterThan(29 * 24 * 3600)
      expect((await two.send('key_b', 'POST', '/v1/responses', { ...create, previous_response_id: id })).status).toBe(404)
      expect((await two.send('key_a', 'POST', '/v1/responses', { ...create, previous_response_id: id })).status).toBe(200)
      const before = mock.upstream.requests.length
      const unreadable = await broken.send('key_a', 'POST', '/v1/responses', { ...create, previous_response_id: id })
      expect(unreadable.status).toBe(503)
      expect(mock.upstream.requests).toHaveLength(before)
    } finally {
      await Promise.all([one.close(), two.close(), broken.close()])
      const keys = await redis.keys(`${prefix}*`)
      if (keys.length) await redis.del(...keys)
      redis.disconnect()
      down.disconnect()
    }
  })

  it('claims an id once: in memory, and across gateways through Redis under concurrent claims', async () => {
    const memory = memoryObjectOwners()
    expect([memory.claim('batch-run:file-1', 'a'), memory.claim('batch-run:file-1', 'b'), memory.owner('batch-run:file-1')]).toEqual([true, false, 'a'])
    const redis = new Redis({ host: '127.0.0.1', port: 6379, maxRetriesPerRequest: 1 })
    const other = new Redis({ host: '127.0.0.1', port: 6379, maxRetriesPerRequest: 1 })
    const prefix = `gh-owners-${randomBytes(4).toString('hex')}:`
    try {
      const stores = [redisObjectOwners(redis, prefix), redisObjectOwners(other, prefix)]
      const won = await Promise.all(Array.from({ length: 20 }, (_, i) => stores[i % 2]!.claim('batch-run:file-2', `key_${i}`)))
      expect(won.filter(Boolean)).toHaveLength(1)
      expect(await stores[1]!.owner('batch-run:file-2')).toBe(`key_${won.indexOf(true)}`)
      expect(await redis.ttl(`${prefix}owner:batch-run:file-2`)).toBeGreaterThan(29 * 24 * 3600)
    } finally {
      const keys = await redis.keys(`${prefix}*`)
      if (keys.length) await redis.del(...keys)
      redis.disconnect()
      other.disconnect()
    }
  })

  it('forgets the oldest owners past max and every owner after 30 days', () => {
    let now = 0
    const owners: ObjectOwners = memoryObjectOwners({ max: 2, clock: () => now })
    owners.record('resp_1', 'a')
    owners.record('resp_2', 'a')
    owners.record('resp_3', 'b')
    expect([owners.owner('resp_1'), owners.owner('resp_2'), owners.owner('resp_3')]).toEqual([undefined, 'a', 'b'])
    now = 30 * 24 * 3600 * 1000
    expect(owners.owner('resp_3')).toBeUndefined()
  })

  it('refuses an objectOwners option that is not false or an owners store', () => {
    expect(() => gatehouseProxy({ providers: { openai: { baseUrl: 'http://127.0.0.1:1', apiKey } }, objectOwners: {} as unknown as ObjectOwners })).toThrow(/objectOwners must be false or have record, owner and claim methods/)
  })
})

describe('files, containers and objects the gateway never sees made', () => {
  it("lets a key refer only to the files and containers it made, and never to objects the gateway never sees made", async () => {
    // A provider that makes a file on upload and a container on a code-execution message, as OpenAI and Anthropic do.
    let files = 0
    let calls = 0
    const stub = http.createServer((req, res) => {
      calls++
      let body = ''
      req.on('data', (c: Buffer) => (body += c.toString()))
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' })
        if (req.url === '/v1/files') return void res.end(JSON.stringify({ id: `file-made${++files}`, object: 'file', bytes: 5, purpose: 'user_data' }))
        if (req.url === '/v1/messages' && body.includes('code_execution'))
          return void res.end(JSON.stringify({ id: 'msg_1', type: 'message', role: 'assistant', content: [{ type: 'text', text: 'x'.repeat(40_000) }], usage: { input_tokens: 1, output_tokens: 1 }, container: { id: 'container_made1', expires_at: '2026-12-05T00:00:00Z' } }))
        res.end(JSON.stringify({ ok: true }))
      })
    })
    await new Promise<void>((r) => stub.listen(0, '127.0.0.1', r))
    const base = `http://127.0.0.1:${(stub.address() as AddressInfo).port}`
    const events: SecurityEvent[] = []
    const proxy = gatehouseProxy({
      providers: {
        openai: { baseUrl: base, apiKey, endpoints: ['openai.chat', 'openai.responses', 'openai.files.create'] },
        claude: { baseUrl: base, apiKey: `sk-ant-api03-${randomBytes(30).toString('base64url')}` },
        gemini: { baseUrl: base, apiKey: `AIza${randomBytes(26).toString('base64url')}` },
      },
      onEvent: (e) => events.push(e),
    })
    const app = express()
    app.use(express.json({ limit: '1mb' }), tenant, proxy)
    const server = await listen(app)
    const send = async (who: string, path: string, body: object | string, type = 'application/json'): Promise<{ status: number; text: string }> => {
      const res = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': type, 'x-test-tenant': who, 'anthropic-version': '2023-06-01' }, body: typeof body === 'string' ? body : JSON.stringify(body) })
      return { status: res.status, text: await res.text() }
    }
    try {
      const upload = await send('key_a', '/openai/v1/files', '--x\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n--x--\r\n', 'multipart/form-data; boundary=x')
      expect(upload.status).toBe(200)
      const chatWith = (fileId: string) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: [{ type: 'file', file: { file_id: fileId } }, { type: 'text', text: 'summarise' }] }] })
      expect((await send('key_a', '/openai/v1/chat/completions', chatWith('file-made1'))).status).toBe(200)
      const before = calls
      const refused = await send('key_b', '/openai/v1/chat/completions', chatWith('file-made1'))
      expect([refused.status, JSON.parse(refused.text)]).toEqual([404, { error: { message: "File with id 'file-made1' not found.", type: 'invalid_request_error', param: 'file_id', code: 'not_found' } }])
      expect((await send('key_a', '/openai/v1/chat/completions', chatWith('file-never-uploaded'))).status).toBe(404)
      // Vector stores, Gemini caches and files: never made through the gateway, never a key's.
      expect((await send('key_a', '/openai/v1/responses', { model: 'gpt-4o-mini', input: 'q', tools: [{ type: 'file_search', vector_store_ids: ['vs_someone'] }] })).status).toBe(404)
      // A code interpreter's files: its own upload passes, another's does not; an existing OpenAI container is nobody's.
      const interpreter = (container: unknown) => ({ model: 'gpt-4o-mini', input: 'q', tools: [{ type: 'code_interpreter', container }] })
      expect((await send('key_b', '/openai/v1/responses', interpreter({ type: 'auto', file_ids: ['file-made1'] }))).status).toBe(404)
      expect((await send('key_a', '/openai/v1/responses', interpreter('cntr_someone'))).status).toBe(404)
      expect((await send('key_a', '/gemini/v1beta/models/gemini-2.0-flash:generateContent', { cachedContent: 'cachedContents/abc', contents: [{ role: 'user', parts: [{ text: 'q' }] }] })).status).toBe(404)
      const geminiFile = { contents: [{ role: 'user', parts: [{ fileData: { mimeType: 'application/pdf', fileUri: 'https://generativelanguage.googleapis.com/v1beta/files/abc' } }] }] }
      expect((await send('key_a', '/gemini/v1beta/models/gemini-2.0-flash:generateContent', geminiFile)).status).toBe(404)
      expect(calls).toBe(before)
      expect((await send('key_a', '/openai/v1/responses', interpreter({ type: 'auto', file_ids: ['file-made1'] }))).status).toBe(200)
      // A container made by key_a's code-execution message (its id at the end of a 40 KB answer) is key_a's only.
      const tool = { model: 'claude-sonnet-4-5', max_tokens: 64, tools: [{ type: 'code_execution_20250825', name: 'code_execution' }], messages: [{ role: 'user', content: 'run' }] }
      expect((await send('key_a', '/claude/v1/messages', tool)).status).toBe(200)
      const reuse = { model: 'claude-sonnet-4-5', max_tokens: 64, container: 'container_made1', messages: [{ role: 'user', content: 'again' }] }
      const stolen = await send('key_b', '/claude/v1/messages', reuse)
      expect([stolen.status, JSON.parse(stolen.text)]).toMatchObject([404, { type: 'error', error: { type: 'not_found_error', message: "Container with id 'container_made1' not found." } }])
      expect((await send('key_a', '/claude/v1/messages', reuse)).status).toBe(200)
      expect(events.filter((e) => e.result === 'object_denied').map((e) => [e.user_id, e.provider, e.details?.kind])).toEqual([
        ['key_b', 'openai', 'file'],
        ['key_a', 'openai', 'file'],
        ['key_a', 'openai', 'vector_store'],
        ['key_b', 'openai', 'file'],
        ['key_a', 'openai', 'container'],
        ['key_a', 'gemini', 'cached_content'],
        ['key_a', 'gemini', 'file'],
        ['key_b', 'claude', 'container'],
      ])
    } finally {
      await server.close()
      proxy.close()
      await new Promise((r) => stub.close(r))
    }
  })
})

describe("objects the operator opens: a provider's sharedObjects and a key's own grants", () => {
  const mock = providerForSuite()

  /** What client-auth does for a key whose scope names objects (here from a test header). */
  const grants: RequestHandler = (req, res, next) => {
    const ids = req.headers['x-test-objects']
    if (typeof ids === 'string') res.locals.gatehouse = { ...(res.locals.gatehouse ?? {}), clientKeyObjects: Object.freeze(ids.split(',')) }
    next()
  }

  it('lets every key use a shared object and only the granted key use its own grant; everything else stays refused and unsent', async () => {
    const events: SecurityEvent[] = []
    const proxy = gatehouseProxy({
      providers: { openai: { baseUrl: mock.upstream.url, apiKey, endpoints: ['openai.responses'], sharedObjects: ['vs_company_docs'] } },
      onEvent: (e) => events.push(e),
    })
    const app = express()
    app.use(express.json(), tenant, grants, proxy)
    const server = await listen(app)
    const search = async (who: string, stores: string[], objects?: string) => {
      const res = await fetch(`${server.url}/v1/responses`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-test-tenant': who, ...(objects ? { 'x-test-objects': objects } : {}) },
        body: JSON.stringify({ ...create, tools: [{ type: 'file_search', vector_store_ids: stores }] }),
      })
      return { status: res.status, text: await res.text() }
    }
    try {
      // The shared store: every key.
      expect((await search('key_a', ['vs_company_docs'])).status).toBe(200)
      expect((await search('key_b', ['vs_company_docs'])).status).toBe(200)
      expect(mock.upstream.requests).toHaveLength(2)
      // key_a's own store, granted to key_a: key_a alone, also beside the shared one.
      expect((await search('key_a', ['vs_team_a', 'vs_company_docs'], 'vs_team_a')).status).toBe(200)
      expect(mock.upstream.last!.json).toMatchObject({ tools: [{ vector_store_ids: ['vs_team_a', 'vs_company_docs'] }] })
      const sent = mock.upstream.requests.length
      const stolen = await search('key_b', ['vs_team_a'])
      expect([stolen.status, JSON.parse(stolen.text)]).toEqual([404, { error: { message: "Vector store with id 'vs_team_a' not found.", type: 'invalid_request_error', param: 'vector_store_ids', code: 'not_found' } }])
      // A grant opens its own ids only: key_b granted another store, or a shared one beside a foreign one.
      expect((await search('key_b', ['vs_team_a'], 'vs_team_b')).status).toBe(404)
      expect((await search('key_b', ['vs_company_docs', 'vs_team_a'])).status).toBe(404)
      // A prefix of a granted id is another id.
      expect((await search('key_a', ['vs_team'], 'vs_team_a')).status).toBe(404)
      // A foreign id behind more references than the walk checks, or nested deeper than it goes: refused, not skipped.
      const crowded = await search('key_b', [...Array.from({ length: 64 }, () => 'vs_company_docs'), 'vs_team_a'])
      expect([crowded.status, (JSON.parse(crowded.text) as { error: { code: string } }).error.code]).toEqual([400, 'too_many_references'])
      const deep = await fetch(`${server.url}/v1/responses`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-test-tenant': 'key_b' },
        body: `{"model":"gpt-4o-mini","input":"hi","metadata":${'['.repeat(70)}{"file_id":"file-of-key-a"}${']'.repeat(70)}}`,
      })
      expect([deep.status, ((await deep.json()) as { error: { code: string } }).error.code]).toEqual([400, 'too_many_references'])
      expect(mock.upstream.requests).toHaveLength(sent)
      expect(events.filter((e) => e.result === 'object_denied').map((e) => [e.user_id, e.details?.kind])).toEqual([
        ['key_b', 'vector_store'],
        ['key_b', 'vector_store'],
        ['key_b', 'vector_store'],
        ['key_a', 'vector_store'],
        ['key_b', 'file'],
        ['key_b', 'file'],
      ])
    } finally {
      await server.close()
      proxy.close()
    }
  })

  it('refuses a sharedObjects option that is empty, not a list or names something that is not an object id', () => {
    for (const [shared, message] of [
      [[], /providers\.openai\.sharedObjects must be a list of 1 to 1024 provider object ids/],
      ['vs_1', /providers\.openai\.sharedObjects must be a list/],
      [['vs_1', 'vs 2'], /providers\.openai\.sharedObjects: "vs 2" is not a provider object id/],
      [[7], /providers\.openai\.sharedObjects: 7 is not a provider object id/],
    ] as const) {
      expect(() => gatehouseProxy({ providers: { openai: { baseUrl: 'http://127.0.0.1:1', apiKey, sharedObjects: shared as unknown as string[] } } })).toThrow(message)
    }
  })
})
