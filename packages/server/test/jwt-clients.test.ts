import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { startHarness, type Harness } from './helpers'

/** auth.jwt through the gateway: an identity provider's token reaches the provider as a key does. */

let issuer: string
let idp: http.Server
let keys: Awaited<ReturnType<typeof generateKeyPair>>
/** How many times the identity provider's key set was fetched. */
let jwksFetches = 0
beforeAll(async () => {
  keys = await generateKeyPair('ES256', { extractable: true })
  const jwk = { ...(await exportJWK(keys.publicKey)), kid: 'gw-test', alg: 'ES256' }
  idp = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    if (req.url === '/.well-known/openid-configuration') res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }))
    else if (req.url === '/jwks') {
      jwksFetches++
      res.end(JSON.stringify({ keys: [jwk] }))
    }
    else res.writeHead(404).end('{}')
  })
  await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r))
  issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`
})
afterAll(() => new Promise((r) => idp.close(r)))

const token = (exp: string | number = '5m', claims: Record<string, unknown> = {}, subject = 'svc-reporting') =>
  new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'gw-test' }).setSubject(subject).setIssuer(issuer).setAudience('gatehouse').setExpirationTime(exp).sign(keys.privateKey)

describe('JWT clients through the gateway (auth.jwt)', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness((c) => {
      c.auth.jwt = { enabled: true, issuer, audience: 'gatehouse', scope_claims: { models: 'gh_models', limits: 'gh_limits' } }
    })
  })
  afterAll(() => h.close())

  const chat = (bearer: string, model = 'gpt-4o-mini') =>
    fetch(`${h.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }) })

  it('serves a token of the issuer as jwt:<sub> (the provider gets the gateway credential, never the token); a static key still works', async () => {
    h.upstream.reset()
    const t = await token()
    const res = await chat(t)
    expect(res.status).toBe(200)
    await res.text()
    expect(h.upstream.requests).toHaveLength(1)
    expect(JSON.stringify(h.upstream.requests[0]!.headers)).not.toContain(t)
    expect(h.events.some((e) => e.event_type === 'auth_success' && e.user_id === 'jwt:svc-reporting')).toBe(true)
    expect((await chat(h.key)).status).toBe(200)
    expect(JSON.stringify(h.events)).not.toContain(t)
  })

  it('refuses an expired token with 401 and nothing sent upstream, and holds a token to the models its claim names', async () => {
    h.upstream.reset()
    const expired = await chat(await token(Math.floor(Date.now() / 1000) - 120))
    expect(expired.status).toBe(401)
    expect(h.events.some((e) => e.event_type === 'auth_failure' && e.result === 'invalid_jwt' && e.details?.reason === 'ERR_JWT_EXPIRED')).toBe(true)
    const scoped = await token('5m', { gh_models: ['gpt-4o-mini'] })
    expect((await chat(scoped, 'gpt-4o-mini')).status).toBe(200)
    expect((await chat(scoped, 'gpt-4.1')).status).toBe(403)
    expect(h.upstream.requests).toHaveLength(1)
  })

  it("holds a token to the limits its claim names, per subject: the third request in a minute is refused, another subject's token is not", async () => {
    const limited = await token('5m', { gh_limits: { requests_per_minute: 2 } }, 'svc-batch')
    const statuses: number[] = []
    for (let i = 0; i < 3; i++) {
      const res = await chat(limited)
      statuses.push(res.status)
      await res.text()
    }
    expect(statuses).toEqual([200, 200, 429])
    const other = await chat(await token())
    expect(other.status).toBe(200)
    await other.text()
  })
})

describe('auth.jwt.clock_tolerance and auth.jwt.jwks_cooldown', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness((c) => {
      c.auth.jwt = { enabled: true, issuer, audience: 'gatehouse', clock_tolerance: 300, jwks_cooldown: 1 }
    })
  })
  afterAll(() => h.close())

  const chat = (bearer: string) =>
    fetch(`${h.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }) })

  it('accepts a token expired within the tolerance, refuses one past it, and refetches the key set for an unknown key once the cooldown has passed', async () => {
    expect((await chat(await token(Math.floor(Date.now() / 1000) - 120))).status).toBe(200)
    expect((await chat(await token(Math.floor(Date.now() / 1000) - 400))).status).toBe(401)
    const fetched = jwksFetches
    // A token naming a key the set does not hold, after the cooldown: the set is fetched again (still refused).
    await new Promise((r) => setTimeout(r, 1100))
    const rogue = await generateKeyPair('ES256')
    const forged = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'rotated-in' }).setSubject('svc').setIssuer(issuer).setAudience('gatehouse').setExpirationTime('5m').sign(rogue.privateKey)
    expect((await chat(forged)).status).toBe(401)
    expect(jwksFetches).toBe(fetched + 1)
  })
})
