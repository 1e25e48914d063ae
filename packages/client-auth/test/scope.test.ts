import { randomBytes } from 'node:crypto'
import request from 'supertest'
import express from 'express'
import { collectEvents, createTestApp, tempDir } from '@gatehouse/testing'
import { clientAuth, FileKeyStore, keyModelScope, MemoryKeyStore, validateKeyScope } from '@gatehouse/client-auth'
import { chmodSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const salt = randomBytes(32).toString('hex')

describe('key scopes', () => {
  it.each<[string, object, RegExp]>([
    ['an empty provider list', { providers: [] }, /providers must not be empty/],
    ['an empty endpoint list', { endpoints: [] }, /endpoints must not be empty/],
    ['an unknown provider', { providers: ['openia'] }, /unknown provider "openia" \(did you mean "openai"\?\)/],
    ['an unknown endpoint', { endpoints: ['openai.chats'] }, /unknown endpoint "openai.chats" \(did you mean "openai.chat"\?\)/],
    ["another provider's endpoint", { providers: ['openai'], endpoints: ['claude.messages'] }, /"claude.messages" is an endpoint of claude, which providers does not include/],
    ['a non-list', { endpoints: 'openai.chat' }, /endpoints must be a list/],
    ['an empty model list', { models: [] }, /models must not be empty/],
    ['a model with a space', { models: ['gpt 4o'] }, /models: "gpt 4o" is not a model name or pattern/],
    ['a limit of zero', { limits: { requests_per_minute: 0 } }, /limits.requests_per_minute must be a whole number of at least 1 \(got 0\)/],
    ['a limit as text', { limits: { tokens_per_minute: '1000' } }, /limits.tokens_per_minute must be a whole number of at least 1 \(got "1000"\)/],
    ['a fractional limit', { limits: { concurrency: 1.5 } }, /limits.concurrency must be a whole number/],
    ['a misspelt limit', { limits: { request_per_minute: 5 } }, /limits: unknown limit "request_per_minute" \(did you mean "requests_per_minute"\?\)/],
    ['limits for an unknown provider', { limits: { providers: { openia: { concurrency: 1 } } } }, /limits.providers: unknown provider "openia"/],
    ["limits for a provider the key may not call", { providers: ['openai'], limits: { providers: { claude: { concurrency: 1 } } } }, /limits.providers.claude: the key may not call claude/],
    ['nested providers in a provider', { limits: { providers: { openai: { providers: {} } } } }, /limits.providers.openai: unknown limit "providers"/],
    ['limits that are not an object', { limits: [5] }, /limits must be an object of limits/],
    ['an empty object list', { objects: [] }, /objects must not be empty/],
    ['an object id with a space', { objects: ['vs_1', 'vs 2'] }, /objects: "vs 2" is not a provider object id/],
    ['an object id that is not text', { objects: [7] }, /objects must be a list of names/],
    ['more object ids than a key may hold', { objects: Array.from({ length: 257 }, (_, i) => `vs_${i}`) }, /objects: at most 256 ids \(got 257\)/],
  ])('refuses %s with GH_AUTH_INVALID_SCOPE (400), naming it', (_what, scope, message) => {
    const store = new MemoryKeyStore(salt)
    let caught: (Error & { code?: string; statusCode?: number }) | undefined
    try {
      store.create({ name: 'k', ...(scope as object) })
    } catch (e) {
      caught = e as Error & { code?: string; statusCode?: number }
    }
    expect(caught?.code).toBe('GH_AUTH_INVALID_SCOPE')
    expect(caught?.statusCode).toBe(400)
    expect(caught?.message).toMatch(message)
    expect(store.list()).toHaveLength(0)
    expect(() => validateKeyScope(scope)).toThrow(message)
  })

  it("hands a key's endpoints to the layers after it (frozen), and nothing for a key without", async () => {
    const store = new MemoryKeyStore(salt)
    const scoped = store.create({ name: 'files', providers: ['openai'], endpoints: ['openai.chat', 'openai.files.list'] })
    const plain = store.create({ name: 'plain' })
    const app = createTestApp(clientAuth({ store }), (_req, res, next) => {
      const e = (res.locals.gatehouse as { clientKeyEndpoints?: readonly string[] }).clientKeyEndpoints
      res.setHeader('x-frozen', String(e ? Object.isFrozen(e) : 'none'))
      next()
    })
    const a = await request(app).post('/v1/chat/completions').set('x-api-key', scoped.key).send({})
    expect(a.status).toBe(200)
    expect(a.body.locals.clientKeyEndpoints).toEqual(['openai.chat', 'openai.files.list'])
    expect(a.headers['x-frozen']).toBe('true')
    const b = await request(app).post('/v1/chat/completions').set('x-api-key', plain.key).send({})
    expect(b.body.locals.clientKeyEndpoints).toBeUndefined()
    // The key's providers still bound it: a claude call is refused.
    const c = await request(app).post('/v1/messages').set('x-api-key', scoped.key).send({})
    expect(c.status).toBe(403)
    expect(JSON.stringify(c.body)).not.toContain(scoped.key)
  })

  it("stores a key's models and limits, frozen, and hands them to the layers after it", async () => {
    const store = new MemoryKeyStore(salt)
    const limits = { requests_per_minute: 60, concurrency: 2, providers: { openai: { tokens_per_minute: 10_000, monthly_tokens: 1_000_000 } } }
    const k = store.create({ name: 'lim', models: ['gpt-4o-mini', 'claude-*'], limits })
    limits.requests_per_minute = 1 // the caller's object is not the stored one
    const app = createTestApp(clientAuth({ store }), (_req, res, next) => {
      const l = res.locals.gatehouse as { clientKeyLimits?: { providers?: object }; clientKeyModels?: readonly string[] }
      res.setHeader('x-frozen', String(Object.isFrozen(l.clientKeyLimits) && Object.isFrozen(l.clientKeyLimits?.providers) && Object.isFrozen(l.clientKeyModels)))
      next()
    })
    const r = await request(app).post('/v1/chat/completions').set('authorization', `Bearer ${k.key}`).send({})
    expect(r.body.locals.clientKeyLimits).toEqual({ requests_per_minute: 60, concurrency: 2, providers: { openai: { tokens_per_minute: 10_000, monthly_tokens: 1_000_000 } } })
    expect(r.body.locals.clientKeyModels).toEqual(['gpt-4o-mini', 'claude-*'])
    expect(r.headers['x-frozen']).toBe('true')
  })

  it("stores a key's objects, frozen, hands them to the layers after it, and keeps them through a rotation", async () => {
    const store = new MemoryKeyStore(salt)
    const objects = ['vs_team_a', 'file-abc123']
    const k = store.create({ name: 'obj', objects })
    objects.push('vs_other') // the caller's list is not the stored one
    const app = createTestApp(clientAuth({ store }), (_req, res, next) => {
      res.setHeader('x-frozen', String(Object.isFrozen((res.locals.gatehouse as { clientKeyObjects?: readonly string[] }).clientKeyObjects)))
      next()
    })
    const r = await request(app).post('/v1/chat/completions').set('authorization', `Bearer ${k.key}`).send({})
    expect([r.body.locals.clientKeyObjects, r.headers['x-frozen']]).toEqual([['vs_team_a', 'file-abc123'], 'true'])
    const successor = store.rotate(k.record.id, 0)
    expect(successor.record.objects).toEqual(['vs_team_a', 'file-abc123'])
    // A key without objects hands none on: it may use only what it made.
    const plain = store.create({ name: 'plain' })
    expect((await request(app).post('/v1/chat/completions').set('authorization', `Bearer ${plain.key}`).send({})).body.locals.clientKeyObjects).toBeUndefined()
  })

  it('fails closed on a key file whose scope was edited into nonsense, naming the key', () => {
    const { dir, cleanup } = tempDir('scope')
    try {
      const file = join(dir, 'keys.json')
      const store = new FileKeyStore({ file, salt, reload: 'stat' })
      const k = store.create({ name: 'a', limits: { requests_per_minute: 5 } })
      expect(store.verify(k.key)?.id).toBe(k.record.id)
      const data = JSON.parse(readFileSync(file, 'utf8')) as { keys: { limits: Record<string, unknown> }[] }
      data.keys[0]!.limits.requests_per_minute = 'unlimited'
      writeFileSync(file, JSON.stringify(data))
      chmodSync(file, 0o600)
      expect(store.verify(k.key)).toBeUndefined()
      expect(store.lastError).toContain(`key ${k.record.id}: limits.requests_per_minute must be a whole number`)
      store.close()
    } finally {
      cleanup()
    }
  })
})

describe('keyModelScope', () => {
  const setup = () => {
    const store = new MemoryKeyStore(salt)
    const { events, onEvent } = collectEvents()
    const app = express()
    app.use(express.json())
    app.use(clientAuth({ store }), keyModelScope({ onEvent }))
    app.use((req, res) => void res.json({ ok: true, path: req.path }))
    return { store, events, app }
  }

  it.each<[string, string, object, string]>([
    ['an OpenAI body model', '/v1/chat/completions', { model: 'gpt-4o', messages: [] }, 'gpt-4o'],
    ['a Gemini path model', '/v1beta/models/gemini-2.5-pro:generateContent', { contents: [] }, 'gemini-2.5-pro'],
    ['an Anthropic batch entry', '/v1/messages/batches', { requests: [{ custom_id: 'a', params: { model: 'claude-haiku-4' } }, { custom_id: 'b', params: { model: 'gpt-4o' } }] }, 'gpt-4o'],
    ['a Gemini batch entry', '/v1beta/models/gemini-2.0-flash:batchEmbedContents', { requests: [{ model: 'models/gemini-2.0-flash' }, { model: 'models/text-embedding-004' }] }, 'text-embedding-004'],
    ['a Gemini batch model', '/v1beta/models/gemini-2.0-flash:batchGenerateContent', { batch: { model: 'models/gemini-2.5-pro', input_config: { requests: { requests: [] } } } }, 'gemini-2.5-pro'],
    ['a Gemini batch request', '/v1beta/models/gemini-2.0-flash:batchGenerateContent', { batch: { inputConfig: { requests: { requests: [{ request: { model: 'models/gemini-2.0-flash' } }, { request: { model: 'models/gemini-2.5-pro' } }] } } } }, 'gemini-2.5-pro'],
  ])('refuses %s outside the key\'s models with 403 in the provider shape and a model_denied event', async (_what, path, body, model) => {
    const { store, events, app } = setup()
    const k = store.create({ name: 'm', models: ['gpt-4o-mini', 'claude-*', 'gemini-2.0-*'] })
    const r = await request(app).post(path).set('x-goog-api-key', k.key).set('anthropic-version', path.startsWith('/v1/messages') ? '2023-06-01' : '').send(body)
    expect(r.status).toBe(403)
    expect(JSON.stringify(r.body)).toContain(`may not use model \\"${model}\\"`)
    expect(JSON.stringify(r.body)).not.toContain(k.key)
    const e = events.find((x) => x.result === 'model_denied')
    expect(e).toMatchObject({ event_type: 'security_violation', user_id: k.record.id, details: { model } })
  })

  it('passes models inside the scope, and every model for a key without one', async () => {
    const { store, events, app } = setup()
    const scoped = store.create({ name: 'm', models: ['gpt-4o-mini', 'claude-*', 'models/gemini-2.0-*'] })
    const open = store.create({ name: 'open' })
    for (const [path, body] of [
      ['/v1/chat/completions', { model: 'gpt-4o-mini' }],
      ['/v1beta/models/gemini-2.0-flash:generateContent', {}],
      ['/v1/models', {}],
    ] as const) {
      const r = await request(app).post(path).set('authorization', `Bearer ${scoped.key}`).send(body)
      expect(r.status).toBe(200)
    }
    // A pattern is a whole-name match: gpt-4o-mini does not allow gpt-4o-mini-2 nor gpt-4o.
    expect((await request(app).post('/v1/chat/completions').set('authorization', `Bearer ${scoped.key}`).send({ model: 'gpt-4o-mini-2' })).status).toBe(403)
    expect((await request(app).post('/v1/chat/completions').set('authorization', `Bearer ${open.key}`).send({ model: 'o3-pro' })).status).toBe(200)
    expect(events.filter((e) => e.result === 'model_denied')).toHaveLength(1)
  })
})
