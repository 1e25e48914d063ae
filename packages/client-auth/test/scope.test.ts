import { randomBytes } from 'node:crypto'
import request from 'supertest'
import { createTestApp } from '@gatehouse/testing'
import { clientAuth, MemoryKeyStore, validateKeyScope } from '@gatehouse/client-auth'

const salt = randomBytes(32).toString('hex')

describe('key scopes', () => {
  it.each<[string, object, RegExp]>([
    ['an empty provider list', { providers: [] }, /providers must not be empty/],
    ['an empty endpoint list', { endpoints: [] }, /endpoints must not be empty/],
    ['an unknown provider', { providers: ['openia'] }, /unknown provider "openia" \(did you mean "openai"\?\)/],
    ['an unknown endpoint', { endpoints: ['openai.chats'] }, /unknown endpoint "openai.chats" \(did you mean "openai.chat"\?\)/],
    ["another provider's endpoint", { providers: ['openai'], endpoints: ['claude.messages'] }, /"claude.messages" is an endpoint of claude, which providers does not include/],
    ['a non-list', { endpoints: 'openai.chat' }, /endpoints must be a list/],
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
})
