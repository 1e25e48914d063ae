import http from 'node:http'
import { randomBytes } from 'node:crypto'
import request from 'supertest'
import { DOCUMENTED_CLIENT_KEYS } from '@gatehouse/core'
import { collectEvents, createTestApp, listen } from '@gatehouse/testing'
import { clientAuth, MemoryKeyStore, generateClientKey } from '@gatehouse/client-auth'

const salt = randomBytes(32).toString('hex')

function setup(extra: Partial<Parameters<typeof clientAuth>[0]> = {}) {
  const store = new MemoryKeyStore(salt)
  const { key, record } = store.create({ name: 'ci' })
  const { events, onEvent } = collectEvents()
  const app = createTestApp(clientAuth({ store, onEvent, ...extra }))
  return { store, key, record, events, app }
}

describe('clientAuth', () => {
  it.each([
    ['Authorization: Bearer', (k: string) => ({ authorization: `Bearer ${k}` })],
    ['x-api-key', (k: string) => ({ 'x-api-key': k })],
    ['x-goog-api-key', (k: string) => ({ 'x-goog-api-key': k })],
  ])('accepts a valid key in %s and strips it', async (_n, headers) => {
    const { app, key, record, events } = setup()
    const res = await request(app).post('/v1/messages').set(headers(key)).send({})
    expect(res.status).toBe(200)
    expect(res.body.locals.clientKeyId).toBe(record.id)
    expect(events).toEqual([expect.objectContaining({ event_type: 'auth_success', user_id: record.id, provider: 'claude' })])
    expect(JSON.stringify(events)).not.toContain(key)
  })

  it('answers 401 in the Anthropic shape with WWW-Authenticate when no key is sent', async () => {
    const { app, events } = setup()
    const res = await request(app).post('/v1/messages').send({})
    expect(res.status).toBe(401)
    expect(res.headers['www-authenticate']).toBe('Bearer')
    expect(res.headers['cache-control']).toBe('no-store')
    expect(res.body).toEqual({ type: 'error', error: { type: 'authentication_error', message: expect.stringContaining('Missing API key') } })
    expect(events[0]).toMatchObject({ event_type: 'auth_failure', result: 'missing_key', provider: 'claude', ip: '127.0.0.1' })
  })

  it.each([
    ['/v1/chat/completions', { error: { message: 'Invalid API key', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } }],
    ['/v1beta/models/gemini-pro:generateContent', { error: { code: 401, message: 'Invalid API key', status: 'UNAUTHENTICATED' } }],
    ['/v1/messages', { type: 'error', error: { type: 'authentication_error', message: 'Invalid API key' } }],
  ])('refuses a wrong key on %s in that provider shape, naming only the key id', async (path, body) => {
    const { app, events } = setup()
    const wrong = generateClientKey()
    const res = await request(app).post(path).set('authorization', `Bearer ${wrong}`).send({})
    expect(res.status).toBe(401)
    expect(res.body).toEqual(body)
    expect(events[0]).toMatchObject({ event_type: 'auth_failure', result: 'invalid_key', user_id: expect.stringMatching(/^key_[0-9a-f]{8}$/) })
    expect(JSON.stringify(events) + JSON.stringify(res.body) + JSON.stringify(res.headers)).not.toContain(wrong)
  })

  it('refuses a revoked key and an expired key', async () => {
    const { app, store, key, record, events } = setup()
    store.revoke(record.id)
    expect((await request(app).get('/v1/models').set('x-api-key', key)).status).toBe(401)
    const expired = store.create({ name: 'old', expiresAt: new Date(Date.now() - 1000) })
    expect((await request(app).get('/v1/models').set('x-api-key', expired.key)).status).toBe(401)
    expect(events.map((e) => e.result)).toEqual(['revoked_key', 'expired_key'])
  })

  it('refuses different keys in two headers', async () => {
    const { app, key, events } = setup()
    const res = await request(app).get('/v1/models').set('x-api-key', key).set('authorization', `Bearer ${generateClientKey()}`)
    expect(res.status).toBe(401)
    expect(events[0]?.result).toBe('conflicting_keys')
  })

  it.each(['key', 'api_key', 'KEY', 'access_token'])('refuses a key in the query string (%s) with 400 and redacts it', async (param) => {
    const { app, key, events } = setup()
    const res = await request(app).post(`/v1beta/models/gemini-pro:generateContent?${param}=${key}`).send({})
    expect(res.status).toBe(400)
    expect(res.body.error.status).toBe('INVALID_ARGUMENT')
    expect(res.body.error.message).toContain(param)
    expect(events[0]).toMatchObject({ event_type: 'security_violation', result: 'key_in_query_string' })
    expect(JSON.stringify(events) + JSON.stringify(res.body)).not.toContain(key)
  })

  it.each(DOCUMENTED_CLIENT_KEYS.map((k) => [k]))('treats the documented key %s as a honeytoken', async (doc) => {
    const seen: string[] = []
    const { app, events } = setup({ onHoneytoken: ({ ip }) => seen.push(ip) })
    const res = await request(app).post('/v1/chat/completions').set('authorization', `Bearer ${doc}`).send({})
    expect(res.status).toBe(401)
    expect(res.body.error.message).toBe('Invalid API key')
    expect(events[0]).toMatchObject({ event_type: 'security_violation', result: 'honeytoken' })
    expect(seen).toEqual(['127.0.0.1'])
  })

  it('treats a configured decoy key as a honeytoken even if it was also issued', async () => {
    const store = new MemoryKeyStore(salt)
    const { key } = store.create({ name: 'decoy' })
    const { events, onEvent } = collectEvents()
    const app = createTestApp(clientAuth({ store, onEvent, honeytokens: [key] }))
    expect((await request(app).get('/v1/models').set('x-api-key', key)).status).toBe(401)
    expect(events[0]?.event_type).toBe('security_violation')
  })

  it('limits a key to its providers with 403', async () => {
    const store = new MemoryKeyStore(salt)
    const { key } = store.create({ name: 'claude-only', providers: ['claude'] })
    const { events, onEvent } = collectEvents()
    const app = createTestApp(clientAuth({ store, onEvent }))
    expect((await request(app).post('/v1/messages').set('x-api-key', key).send({})).status).toBe(200)
    const res = await request(app).post('/v1/chat/completions').set('x-api-key', key).send({})
    expect(res.status).toBe(403)
    expect(res.body.error.type).toBe('invalid_request_error')
    expect(events[1]).toMatchObject({ event_type: 'auth_failure', result: 'provider_not_allowed' })
  })

  it('stops a revoked key on the next request of a kept-alive connection', async () => {
    const { app, store, key, record } = setup()
    const server = await listen(app)
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const call = () =>
      new Promise<{ status: number; socket: unknown }>((resolve, reject) => {
        const req = http.get(`${server.url}/v1/models`, { agent, headers: { 'x-api-key': key } }, (res) => {
          res.resume()
          res.on('end', () => resolve({ status: res.statusCode ?? 0, socket: req.socket }))
        })
        req.on('error', reject)
      })
    try {
      const first = await call()
      expect(first.status).toBe(200)
      store.revoke(record.id)
      const second = await call()
      expect(second.status).toBe(401)
      expect(second.socket).toBe(first.socket)
    } finally {
      agent.destroy()
      await server.close()
    }
  })

  it('hashes a key once per kept-alive connection, and any other key on it afresh', async () => {
    const { app, store, key } = setup()
    const other = store.create({ name: 'other' }).key
    const hashed: string[] = []
    const hash = store.hash.bind(store)
    store.hash = (k: string) => {
      hashed.push(k)
      return hash(k)
    }
    const server = await listen(app)
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const call = (k: string) =>
      new Promise<number>((resolve, reject) => {
        const req = http.get(`${server.url}/v1/models`, { agent, headers: { 'x-api-key': k } }, (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode ?? 0))
        })
        req.on('error', reject)
      })
    try {
      expect([await call(key), await call(key), await call(key)]).toEqual([200, 200, 200])
      expect(hashed).toHaveLength(1)
      // Another client's key on the same connection (a proxy in front): hashed, not mistaken for the first.
      expect(await call(other)).toBe(200)
      expect(await call(`${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`)).toBe(401)
      expect(await call(key)).toBe(200)
      expect(hashed).toHaveLength(4)
    } finally {
      agent.destroy()
      await server.close()
    }
  })

  it('survives an onEvent handler that throws', async () => {
    const store = new MemoryKeyStore(salt)
    const { key } = store.create({ name: 'x' })
    const app = createTestApp(clientAuth({ store, onEvent: () => { throw new Error('sink down') } }))
    expect((await request(app).get('/v1/models').set('x-api-key', key)).status).toBe(200)
    expect((await request(app).get('/v1/models')).status).toBe(401)
  })
})

describe('clientAuth successEventInterval', () => {
  it('emits auth_success once per key and address per interval, failures every time', async () => {
    const store = new MemoryKeyStore(salt)
    const { key } = store.create({ name: 'ci' })
    const { events, onEvent } = collectEvents()
    const app = createTestApp(clientAuth({ store, onEvent, successEventInterval: 60_000 }))
    for (let i = 0; i < 3; i++) expect((await request(app).get('/v1/models').set('x-api-key', key)).status).toBe(200)
    for (let i = 0; i < 2; i++) expect((await request(app).get('/v1/models')).status).toBe(401)
    expect(events.map((e) => e.event_type)).toEqual(['auth_success', 'auth_failure', 'auth_failure'])
  })
})
