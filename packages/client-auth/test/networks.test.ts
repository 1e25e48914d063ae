import { randomBytes } from 'node:crypto'
import request from 'supertest'
import { collectEvents, createTestApp } from '@gatehouse/testing'
import { clientAuth, MemoryKeyStore } from '@gatehouse/client-auth'

/**
 * Keys bound to networks: valid only from the CIDRs they carry. The caller's address is the one
 * Express derives (req.ip), so behind a trusted proxy it is the forwarded client address.
 */

function setup(networks: string[]) {
  const store = new MemoryKeyStore(randomBytes(32).toString('hex'))
  const bound = store.create({ name: 'office', networks })
  const free = store.create({ name: 'anywhere' })
  const { events, onEvent } = collectEvents()
  const app = createTestApp(clientAuth({ store, onEvent }))
  // The proxy in front of the gateway is on loopback: X-Forwarded-For from it is the client.
  app.set('trust proxy', 'loopback')
  return { app, bound, free, events }
}

describe('a key bound to networks', () => {
  it('is refused from loopback like an unknown key (401, same body), with an auth_failure that says why', async () => {
    const { app, bound, events } = setup(['10.0.0.0/8'])
    const res = await request(app).post('/v1/chat/completions').set('authorization', `Bearer ${bound.key}`).send({})
    expect(res.status).toBe(401)
    expect(res.body).toEqual({ error: { message: 'Invalid API key', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } })
    // Nothing in the answer tells the caller the key exists or where it would work.
    expect(JSON.stringify(res.body) + JSON.stringify(res.headers)).not.toMatch(/10\.0\.0\.0|network/)
    expect(events).toEqual([expect.objectContaining({ event_type: 'auth_failure', result: 'network_not_allowed', user_id: bound.record.id, ip: '127.0.0.1' })])
    expect(JSON.stringify(events)).not.toContain(bound.key)
  })

  it('is accepted from an address inside (a client behind the trusted proxy), and refused from one outside', async () => {
    const { app, bound, events } = setup(['10.0.0.0/8', '2001:db8::/32'])
    const inside = await request(app).post('/v1/chat/completions').set('authorization', `Bearer ${bound.key}`).set('x-forwarded-for', '10.20.30.40').send({})
    expect(inside.status).toBe(200)
    expect(inside.body.locals.clientKeyId).toBe(bound.record.id)
    const v6 = await request(app).post('/v1/chat/completions').set('authorization', `Bearer ${bound.key}`).set('x-forwarded-for', '2001:db8::7').send({})
    expect(v6.status).toBe(200)
    const mapped = await request(app).post('/v1/chat/completions').set('authorization', `Bearer ${bound.key}`).set('x-forwarded-for', '::ffff:10.1.1.1').send({})
    expect(mapped.status).toBe(200)
    const outside = await request(app).post('/v1/chat/completions').set('authorization', `Bearer ${bound.key}`).set('x-forwarded-for', '192.0.2.1').send({})
    expect(outside.status).toBe(401)
    expect(events.filter((e) => e.event_type === 'auth_failure').map((e) => [e.result, e.ip])).toEqual([['network_not_allowed', '192.0.2.1']])
  })

  it('leaves keys without networks valid from anywhere', async () => {
    const { app, free } = setup(['10.0.0.0/8'])
    for (const from of [undefined, '192.0.2.1', '10.0.0.1']) {
      const r = request(app).post('/v1/chat/completions').set('authorization', `Bearer ${free.key}`)
      const res = await (from ? r.set('x-forwarded-for', from) : r).send({})
      expect(res.status).toBe(200)
    }
  })

  it('refuses a key whose networks are not CIDRs or addresses, or empty', () => {
    const store = new MemoryKeyStore(randomBytes(32).toString('hex'))
    for (const networks of [['10.0.0.0/33'], ['not-a-network'], ['10.0.0.0/8', '300.1.1.1'], []]) {
      expect(() => store.create({ name: 'bad', networks })).toThrow(expect.objectContaining({ code: 'GH_AUTH_INVALID_SCOPE', statusCode: 400 }))
    }
    expect(store.list()).toEqual([])
  })
})
