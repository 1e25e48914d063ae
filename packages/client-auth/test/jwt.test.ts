import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createHmac, randomBytes } from 'node:crypto'
import request from 'supertest'
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK } from 'jose'
import { collectEvents, createTestApp, fakeClock, type FakeClock } from '@gatehouse/testing'
import { clientAuth, MemoryKeyStore } from '@gatehouse/client-auth'

/**
 * JWT clients: tokens from an identity provider (a local one: discovery document and a JWKS that
 * rotates), verified beside the static keys; the known JWT attacks each get 401 and an event.
 */

type Pair = Awaited<ReturnType<typeof generateKeyPair>>

let issuer: string
let server: http.Server
let jwks: JWK[] = []
let fetches = 0
beforeAll(async () => {
  server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    if (req.url === '/.well-known/openid-configuration') res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }))
    else if (req.url === '/jwks') {
      fetches++
      res.end(JSON.stringify({ keys: jwks }))
    } else res.writeHead(404).end('{}')
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(() => new Promise((r) => server.close(r)))
let clock: FakeClock | undefined
afterEach(() => clock?.restore())

async function signer(kid: string, alg = 'RS256'): Promise<{ pair: Pair; jwk: JWK }> {
  const pair = await generateKeyPair(alg, { extractable: true })
  const jwk = { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' }
  return { pair, jwk }
}

const token = (pair: Pair, kid: string, claims: Record<string, unknown> = {}, opts: { iss?: string; aud?: string; exp?: number | string; alg?: string } = {}) =>
  new SignJWT({ ...claims })
    .setProtectedHeader({ alg: opts.alg ?? 'RS256', kid })
    .setSubject('alice@example.com')
    .setIssuer(opts.iss ?? issuer)
    .setAudience(opts.aud ?? 'gatehouse')
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '5m')
    .sign(pair.privateKey)

function app() {
  const store = new MemoryKeyStore(randomBytes(32).toString('hex'))
  const { key } = store.create({ name: 'static' })
  const { events, onEvent } = collectEvents()
  const a = createTestApp(clientAuth({ store, onEvent, jwt: { issuer, audience: 'gatehouse', jwksCooldown: 1, scopeClaims: { providers: 'gh_providers', limits: 'gh_limits', objects: 'gh_objects' } } }))
  return { app: a, events, staticKey: key }
}

const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url')

describe('JWT client authentication', () => {
  it('admits a token of the issuer as jwt:<sub>, beside a static key, and keeps working while the issuer rotates its keys', async () => {
    // Only Date is fake (jose's cool-down and the tokens' iat/exp read it): the JWKS fetches are real.
    clock = fakeClock({ timers: false })
    const k1 = await signer('k1')
    jwks = [k1.jwk]
    const { app: a, events, staticKey } = app()
    const t1 = await token(k1.pair, 'k1')
    const ok = await request(a).post('/v1/chat/completions').set('authorization', `Bearer ${t1}`).send({})
    expect(ok.status).toBe(200)
    expect(ok.body.locals.clientKeyId).toBe('jwt:alice@example.com')
    expect((await request(a).post('/v1/chat/completions').set('authorization', `Bearer ${staticKey}`).send({})).status).toBe(200)
    // Rotation: the issuer publishes k2 beside k1, then signs with k2 only.
    const k2 = await signer('k2', 'ES256')
    jwks = [k1.jwk, k2.jwk]
    await clock.advance(1000) // the refetch cool-down
    const t2 = await token(k2.pair, 'k2', {}, { alg: 'ES256' })
    expect((await request(a).post('/v1/chat/completions').set('authorization', `Bearer ${t2}`).send({})).status).toBe(200)
    expect((await request(a).post('/v1/chat/completions').set('authorization', `Bearer ${t1}`).send({})).status).toBe(200)
    const successes = events.filter((e) => e.event_type === 'auth_success').map((e) => e.user_id)
    expect(successes).toContain('jwt:alice@example.com')
    expect(JSON.stringify(events)).not.toContain(t1)
  })

  it("takes the identity's own limits from the limits claim, checked as a key's; a malformed one refuses the token", async () => {
    const k1 = await signer('k1')
    jwks = [k1.jwk]
    const { app: a, events } = app()
    const limits = { requests_per_minute: 5, providers: { openai: { tokens_per_minute: 1000 } } }
    const ok = await request(a).post('/v1/chat/completions').set('authorization', `Bearer ${await token(k1.pair, 'k1', { gh_limits: limits })}`).send({})
    expect(ok.status).toBe(200)
    expect(ok.body.locals.clientKeyLimits).toEqual(limits)
    for (const bad of [{ requests_per_minute: -1 }, { requests_per_minute: 'lots' }, ['requests_per_minute', 5]]) {
      const res = await request(a).post('/v1/chat/completions').set('authorization', `Bearer ${await token(k1.pair, 'k1', { gh_limits: bad })}`).send({})
      expect([res.status, res.body.locals]).toEqual([401, undefined])
    }
    const reasons = events.filter((e) => e.event_type === 'auth_failure').map((e) => e.details?.reason)
    expect(reasons).toEqual(['GH_AUTH_INVALID_SCOPE', 'GH_AUTH_INVALID_SCOPE', 'GH_AUTH_INVALID_SCOPE'])
  })

  it('takes the objects an identity may use from the objects claim (a list or a spaced string); a malformed id refuses the token', async () => {
    const k1 = await signer('k1')
    jwks = [k1.jwk]
    const { app: a } = app()
    for (const claim of [['vs_team_a', 'file-abc'], 'vs_team_a file-abc']) {
      const ok = await request(a).post('/v1/chat/completions').set('authorization', `Bearer ${await token(k1.pair, 'k1', { gh_objects: claim })}`).send({})
      expect([ok.status, ok.body.locals.clientKeyObjects]).toEqual([200, ['vs_team_a', 'file-abc']])
    }
    const bad = await request(a).post('/v1/chat/completions').set('authorization', `Bearer ${await token(k1.pair, 'k1', { gh_objects: ['vs team'] })}`).send({})
    expect([bad.status, bad.body.locals]).toEqual([401, undefined])
  })

  it.each([
    ['expired', async (k: Pair) => token(k, 'k1', {}, { exp: Math.floor(Date.now() / 1000) - 120 }), 'ERR_JWT_EXPIRED'],
    ['for another audience', async (k: Pair) => token(k, 'k1', {}, { aud: 'someone-else' }), 'ERR_JWT_CLAIM_VALIDATION_FAILED'],
    ['from another issuer', async (k: Pair) => token(k, 'k1', {}, { iss: 'https://evil.example' }), 'ERR_JWT_CLAIM_VALIDATION_FAILED'],
    ['unsigned (alg none)', async () => `${b64({ alg: 'none', kid: 'k1' })}.${b64({ sub: 'mallory', iss: issuer, aud: 'gatehouse', exp: Math.floor(Date.now() / 1000) + 300 })}.`, undefined],
    [
      'HMAC-signed with the public key as secret (algorithm confusion)',
      async (k: Pair) => {
        const pem = await exportSPKI(k.publicKey)
        const head = b64({ alg: 'HS256', kid: 'k1' })
        const body = b64({ sub: 'mallory', iss: issuer, aud: 'gatehouse', exp: Math.floor(Date.now() / 1000) + 300 })
        return `${head}.${body}.${createHmac('sha256', pem).update(`${head}.${body}`).digest('base64url')}`
      },
      'ERR_JOSE_ALG_NOT_ALLOWED',
    ],
    ['naming a key the issuer does not publish (kid injection)', async () => token((await signer('x')).pair, '../../../etc/passwd'), 'ERR_JWKS_NO_MATCHING_KEY'],
    ['signed by a stranger under a published kid', async () => token((await signer('k1')).pair, 'k1'), 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED'],
  ])('refuses a token %s: 401 as a wrong key, an auth_failure with the reason, nothing passed on', async (_what, make, reason) => {
    const k1 = await signer('k1')
    jwks = [k1.jwk]
    const { app: a, events } = app()
    const t = await make(k1.pair)
    const res = await request(a).post('/v1/chat/completions').set('authorization', `Bearer ${t}`).send({})
    expect(res.status).toBe(401)
    expect(res.body).toEqual({ error: { message: 'Invalid API key', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } })
    expect(res.body.locals).toBeUndefined()
    const failure = events.find((e) => e.event_type === 'auth_failure')
    expect(failure).toMatchObject({ result: 'invalid_jwt' })
    if (reason) expect(failure?.details?.reason).toBe(reason)
    expect(JSON.stringify(events)).not.toContain(t.split('.')[2] || t)
  })

  it('applies the scope its claims carry: a token limited to openai gets 403 on claude', async () => {
    const k1 = await signer('k1')
    jwks = [k1.jwk]
    const { app: a, events } = app()
    const t = await token(k1.pair, 'k1', { gh_providers: ['openai'] })
    expect((await request(a).post('/v1/chat/completions').set('authorization', `Bearer ${t}`).send({})).status).toBe(200)
    const res = await request(a).post('/v1/messages').set('x-api-key', t).send({})
    expect(res.status).toBe(403)
    expect(events.find((e) => e.result === 'provider_not_allowed')).toMatchObject({ user_id: 'jwt:alice@example.com' })
  })

  it('fetches the key set at most once per cool-down however many unknown kids are tried', async () => {
    clock = fakeClock({ timers: false }) // however long the 20 requests take, they are within one cool-down
    const k1 = await signer('k1')
    jwks = [k1.jwk]
    const { app: a } = app()
    await request(a).post('/v1/chat/completions').set('authorization', `Bearer ${await token(k1.pair, 'k1')}`).send({})
    const before = fetches
    const stranger = (await signer('s')).pair
    for (let i = 0; i < 20; i++) await request(a).post('/v1/chat/completions').set('authorization', `Bearer ${await token(stranger, `kid-${i}`)}`).send({})
    expect(fetches - before).toBeLessThanOrEqual(1)
  })

  it('refuses options that would weaken verification', () => {
    const store = new MemoryKeyStore(randomBytes(32).toString('hex'))
    for (const jwt of [
      { issuer, audience: 'gatehouse', algorithms: ['HS256'] },
      { issuer, audience: 'gatehouse', algorithms: ['none'] },
      { issuer: 'http://idp.example.com', audience: 'gatehouse' },
      { issuer, audience: [] },
    ]) {
      expect(() => clientAuth({ store, jwt: jwt as never })).toThrow(expect.objectContaining({ code: 'GH_AUTH_INVALID_OPTIONS' }))
    }
  })

  it('checks the jwt option against its exported schema: an unknown key, a tolerance out of range', () => {
    const store = new MemoryKeyStore(randomBytes(32).toString('hex'))
    expect(() => clientAuth({ store, jwt: { issuer, audience: 'gatehouse', jwksUrl: `${issuer}/jwks` } as never })).toThrow(
      expect.objectContaining({ code: 'GH_AUTH_UNKNOWN_OPTION', message: expect.stringContaining('did you mean "jwksUri"') }),
    )
    expect(() => clientAuth({ store, jwt: { issuer, audience: 'gatehouse', clockTolerance: 301 } })).toThrow(
      expect.objectContaining({ code: 'GH_AUTH_INVALID_OPTIONS', message: expect.stringContaining('clockTolerance: must be <= 300') }),
    )
  })
})
