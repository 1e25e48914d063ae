import * as fs from 'node:fs'
import * as path from 'node:path'
import { collectEvents, fakeClock, type FakeClock } from '@gatehouse/testing'
import { createCredentialVault, requestTokenRefresh, TokenRefreshError, type CredentialVault } from '@gatehouse/credential-vault'
import {
  cleanupDirs,
  expectNoSecrets,
  newKey,
  oauthToken,
  recordingLogger,
  refreshToken,
  sleep,
  startTokenEndpoint,
  tmpDir,
  waitFor,
  type TokenEndpoint,
} from './helpers'

const vaults: CredentialVault[] = []
const endpoints: TokenEndpoint[] = []
let clock: FakeClock | undefined
afterEach(async () => {
  clock?.restore()
  await Promise.all(vaults.splice(0).map((v) => v.shutdown()))
  await Promise.all(endpoints.splice(0).map((e) => e.close()))
})
afterAll(cleanupDirs)

async function setup(extra: Partial<Parameters<typeof createCredentialVault>[0]> = {}) {
  const dir = tmpDir()
  const key = newKey()
  const { events, onEvent } = collectEvents()
  const logger = recordingLogger()
  const endpoint = await startTokenEndpoint()
  endpoints.push(endpoint)
  const vault = createCredentialVault({ dir, encryption: { key }, watch: false, rescanInterval: 0, onEvent, logger, ...extra })
  vaults.push(vault)
  return { dir, key, vault, events, logger, endpoint }
}

async function addOAuth(vault: CredentialVault, tokenUrl: string, expiresAt: number, extra: Record<string, string> = {}) {
  const access = oauthToken()
  const refresh = refreshToken()
  const { id } = await vault.add({
    provider: 'claude',
    type: 'oauth',
    oauth: { access_token: access, refresh_token: refresh, expires_at: expiresAt, token_url: tokenUrl, ...extra },
  })
  return { id, access, refresh }
}

const allSecrets = (endpoint: TokenEndpoint, ...more: string[]): string[] => [
  ...more,
  ...endpoint.issued.flatMap((t) => [t.access_token, t.refresh_token]),
]

describe('OAuth refresh', () => {
  it('makes exactly one refresh call for 20 concurrent requests with an expired token', async () => {
    const { vault, endpoint, events, logger, dir, key } = await setup()
    endpoint.delayMs = 150
    const old = await addOAuth(vault, endpoint.url, Date.now() - 1000, { client_id: 'gatehouse-test' })
    const leases = await Promise.all(Array.from({ length: 20 }, () => vault.acquire('claude')))
    expect(endpoint.calls).toHaveLength(1)
    const issued = endpoint.issued[0]!
    for (const lease of leases) {
      expect(lease?.headers).toEqual({ authorization: `Bearer ${issued.access_token}`, 'anthropic-beta': 'oauth-2025-04-20' })
    }
    const call = endpoint.calls[0]!
    expect(call.contentType).toBe('application/x-www-form-urlencoded')
    expect(Object.fromEntries(call.form)).toEqual({ grant_type: 'refresh_token', refresh_token: old.refresh, client_id: 'gatehouse-test' })

    const refreshEvents = events.filter((e) => e.event_type === 'token_refresh')
    expect(refreshEvents).toEqual([
      expect.objectContaining({
        provider: 'claude',
        result: 'success',
        details: expect.objectContaining({ credential_id: old.id, refresh_token_rotated: true, expires_at: expect.any(String) }),
      }),
    ])
    expectNoSecrets([events, logger.lines, vault.list()], allSecrets(endpoint, old.access, old.refresh))

    // Persisted encrypted: the file holds no token, and a restart uses the new ones.
    await vault.shutdown() // waits for the pending write
    const raw = fs.readFileSync(path.join(dir, `${old.id}.json`), 'utf8')
    expectNoSecrets(raw, allSecrets(endpoint, old.access, old.refresh))
    const restarted = createCredentialVault({ dir, encryption: { key }, watch: false, rescanInterval: 0 })
    vaults.push(restarted)
    const exported = restarted.export({ includeSecrets: true }).credentials[0]!
    expect(exported.oauth).toMatchObject({ access_token: issued.access_token, refresh_token: issued.refresh_token })
    expect(exported.oauth!.expires_at!).toBeGreaterThan(Date.now() + 3500_000)
    expect((await restarted.acquire('claude'))?.headers.authorization).toBe(`Bearer ${issued.access_token}`)
    expect(endpoint.calls).toHaveLength(1)
  })

  it('refreshes in the background before expiry and keeps serving the current token meanwhile', async () => {
    const { vault, endpoint, events } = await setup({ refreshSkew: '60s' })
    endpoint.delayMs = 600
    const old = await addOAuth(vault, endpoint.url, Date.now() + 30_000)
    const started = Date.now()
    const first = await vault.acquire('claude')
    expect(Date.now() - started).toBeLessThan(400) // did not wait for the 600 ms refresh
    expect(first?.headers.authorization).toBe(`Bearer ${old.access}`)
    await waitFor(() => events.some((e) => e.event_type === 'token_refresh' && e.result === 'success'), 3000, 'the background refresh')
    const second = await vault.acquire('claude')
    expect(second?.headers.authorization).toBe(`Bearer ${endpoint.issued[0]!.access_token}`)
    expect(endpoint.calls).toHaveLength(1)
  })

  it('keeps the refresh token when the endpoint does not rotate it', async () => {
    const { vault, endpoint } = await setup()
    endpoint.behaviour = 'no_rotation'
    const old = await addOAuth(vault, endpoint.url, Date.now() - 1)
    await vault.acquire('claude')
    const c = vault.export({ includeSecrets: true }).credentials[0]!
    expect(c.oauth).toMatchObject({ access_token: endpoint.issued[0]!.access_token, refresh_token: old.refresh })
  })

  it('gives up on a stalled endpoint after refreshTimeout, with a token_refresh failure event', async () => {
    const { vault, endpoint, events } = await setup({ refreshTimeout: '300ms', refreshBackoff: '10s' })
    endpoint.behaviour = 'stall'
    const old = await addOAuth(vault, endpoint.url, Date.now() - 1)
    const started = Date.now()
    const leases = await Promise.all(Array.from({ length: 5 }, () => vault.acquire('claude')))
    const took = Date.now() - started
    expect(leases).toEqual([undefined, undefined, undefined, undefined, undefined])
    expect(took).toBeGreaterThanOrEqual(280)
    expect(took).toBeLessThan(2000)
    expect(endpoint.calls).toHaveLength(1)
    expect(events.filter((e) => e.event_type === 'token_refresh')).toEqual([
      expect.objectContaining({
        result: 'failure',
        details: expect.objectContaining({ credential_id: old.id, code: 'GH_VAULT_REFRESH_TIMEOUT', reason: 'timeout', failures: 1, retry_in_ms: 10_000 }),
      }),
    ])
    expect(vault.retryAfterSeconds('claude')).toBe(10)
  })
})

describe('OAuth refresh failures: backoff, isolation and rejection', () => {
  it('marks a credential unhealthy on invalid_grant and backs off instead of retrying on every request', async () => {
    // Only Date is fake: the refreshes are real round trips to the token endpoint.
    clock = fakeClock({ timers: false })
    const { vault, endpoint, events, logger } = await setup({ refreshBackoff: '200ms', refreshBackoffMax: '10s' })
    endpoint.behaviour = 'invalid_grant'
    const old = await addOAuth(vault, endpoint.url, Date.now() - 1)
    expect(await Promise.all(Array.from({ length: 20 }, () => vault.acquire('claude')))).toEqual(Array(20).fill(undefined))
    expect(endpoint.calls).toHaveLength(1)
    for (let i = 0; i < 20; i++) expect(await vault.acquire('claude')).toBeUndefined()
    expect(endpoint.calls).toHaveLength(1)
    expect(vault.get(old.id)).toMatchObject({ status: 'unhealthy', unhealthy_reason: 'refresh_failed:invalid_grant' })

    // No new call until the backoff is over, then one.
    await clock.advance(199)
    expect(await vault.acquire('claude')).toBeUndefined()
    expect(endpoint.calls).toHaveLength(1)
    await clock.advance(1)
    expect(await vault.acquire('claude')).toBeUndefined()
    expect(endpoint.calls).toHaveLength(2)
    const failures = events.filter((e) => e.event_type === 'token_refresh' && e.result === 'failure')
    expect(failures.map((e) => e.details?.retry_in_ms)).toEqual([200, 400])
    expect(failures[0]?.details).toMatchObject({ reason: 'invalid_grant', code: 'GH_VAULT_REFRESH_FAILED' })
    // The endpoint's error_description quotes the refresh token: it must not travel anywhere.
    expectNoSecrets([events, logger.lines, vault.list()], [old.refresh, old.access])

    endpoint.behaviour = 'ok'
    await clock.advance(399)
    expect(await vault.acquire('claude')).toBeUndefined()
    expect(endpoint.calls).toHaveLength(2)
    await clock.advance(1)
    expect((await vault.acquire('claude'))?.headers.authorization).toBe(`Bearer ${endpoint.issued[0]!.access_token}`)
    expect(vault.get(old.id)?.status).toBe('active')
  })

  it('isolates credentials: one failing or stalled refresh never delays or disables another', async () => {
    const { vault, endpoint: bad, events } = await setup({ refreshTimeout: '5s' })
    const good = await startTokenEndpoint()
    endpoints.push(good)
    bad.behaviour = 'stall'
    const a = await addOAuth(vault, bad.url, Date.now() - 1)
    const b = await addOAuth(vault, good.url, Date.now() + 3600_000)
    const started = Date.now()
    const leases = await Promise.all(Array.from({ length: 10 }, () => vault.acquire('claude')))
    expect(Date.now() - started).toBeLessThan(1000)
    expect(new Set(leases.map((l) => l?.credentialId))).toEqual(new Set([b.id]))
    await waitFor(() => bad.calls.length === 1, 2000, 'the stalled refresh to start')
    expect(good.calls).toHaveLength(0)
    expect(vault.get(b.id)?.status).toBe('active')

    // b expires too: its refresh succeeds while a's is still hanging.
    await vault.update(b.id, { oauth: { expires_at: Date.now() - 1 } })
    const lease = await vault.acquire('claude')
    expect(lease?.credentialId).toBe(b.id)
    expect(good.calls).toHaveLength(1)
    expect(events.filter((e) => e.event_type === 'token_refresh' && e.result === 'success')).toHaveLength(1)
    void a
  })

  it('refreshes an OAuth token rejected with proof once, then cools it down (or keeps it, when it is the last)', async () => {
    const { vault, endpoint, events } = await setup({ unhealthyCooldown: '60s' })
    const old = await addOAuth(vault, endpoint.url, Date.now() + 3600_000)
    const first = await vault.acquire('claude')
    first?.report(401)
    expect(endpoint.calls).toHaveLength(0) // a status alone is no proof
    first?.reject('invalid_credential')
    first?.reject('invalid_credential')
    const second = await vault.acquire('claude')
    expect(endpoint.calls).toHaveLength(1)
    expect(second?.headers.authorization).toBe(`Bearer ${endpoint.issued[0]!.access_token}`)
    second?.reject('invalid_credential')
    // The only credential of the provider: it keeps serving, and says so.
    expect((await vault.acquire('claude'))?.credentialId).toBe(old.id)
    expect(events.filter((e) => e.result === 'rejected').map((e) => e.details?.action)).toEqual(['refresh', 'kept_last_credential'])
    // With another credential beside it, the next rejection cools it down.
    const other = await vault.add({ provider: 'claude', type: 'api_key', token: `sk-ant-api03-${'x'.repeat(10)}${Date.now()}` })
    const third = await vault.acquire('claude')
    ;(third?.credentialId === old.id ? third : await vault.acquire('claude'))?.reject('invalid_credential')
    expect(vault.get(old.id)).toMatchObject({ status: 'unhealthy', unhealthy_reason: 'rejected:invalid_credential' })
    expect(vault.get(other.id)?.status).toBe('active')
  })
})

describe('OAuth refresh racing a management change', () => {
  it('drops a refresh result for a credential revoked meanwhile (nothing re-created on disk)', async () => {
    const { vault, endpoint, dir } = await setup()
    endpoint.delayMs = 200
    const old = await addOAuth(vault, endpoint.url, Date.now() - 1)
    const pending = vault.acquire('claude')
    await waitFor(() => endpoint.calls.length === 1, 2000)
    await vault.revoke('claude', old.id)
    expect(await pending).toBeUndefined()
    await sleep(50)
    expect(fs.readdirSync(dir)).toEqual([])
  })

  it('keeps tokens an operator replaced while a refresh was running (the stale result is dropped)', async () => {
    const { vault, endpoint } = await setup()
    endpoint.delayMs = 200
    const old = await addOAuth(vault, endpoint.url, Date.now() - 1)
    const pending = vault.acquire('claude')
    await waitFor(() => endpoint.calls.length === 1, 2000)
    const replaced = { access_token: oauthToken(), refresh_token: refreshToken(), expires_at: Date.now() + 3600_000 }
    await vault.update(old.id, { oauth: replaced })
    await pending
    await sleep(20)
    const now = vault.export({ includeSecrets: true }).credentials[0]!.oauth!
    expect(now).toMatchObject({ access_token: replaced.access_token, refresh_token: replaced.refresh_token })
    expect((await vault.acquire('claude'))?.headers.authorization).toBe(`Bearer ${replaced.access_token}`)
  })
})

describe('acquireNowOrLater', () => {
  it('hands a usable credential over at once and returns a promise only when a refresh must come first', async () => {
    const { vault, endpoint } = await setup()
    const fresh = await addOAuth(vault, endpoint.url, Date.now() + 3_600_000)
    const now = vault.acquireNowOrLater('claude')
    expect(now).not.toBeInstanceOf(Promise)
    expect((now as { credentialId: string }).credentialId).toBe(fresh.id)
    expect(vault.acquireNowOrLater('openai')).toBeUndefined()
    await vault.delete(fresh.id)
    const expired = await addOAuth(vault, endpoint.url, Date.now() - 1000)
    const later = vault.acquireNowOrLater('claude')
    expect(later).toBeInstanceOf(Promise)
    const lease = await later
    expect(lease?.credentialId).toBe(expired.id)
    expect(endpoint.issued).toHaveLength(1)
    expect(lease?.headers.authorization).toBe(`Bearer ${endpoint.issued[0]!.access_token}`)
  })
})

describe('requestTokenRefresh', () => {
  it.each<[TokenEndpoint['behaviour'], string]>([
    ['invalid_grant', 'invalid_grant'],
    ['error500', 'http_500'],
  ])('classifies a %s answer as %s without quoting the body', async (behaviour, reason) => {
    const endpoint = await startTokenEndpoint()
    endpoints.push(endpoint)
    endpoint.behaviour = behaviour
    const rt = refreshToken()
    const err = await requestTokenRefresh({ tokenUrl: endpoint.url, refreshToken: rt, timeoutMs: 2000 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TokenRefreshError)
    expect(err).toMatchObject({ reason, code: 'GH_VAULT_REFRESH_FAILED' })
    expect((err as Error).message).not.toContain(rt)
  })

  it('reports an unreachable endpoint as network', async () => {
    const endpoint = await startTokenEndpoint()
    const url = endpoint.url
    await endpoint.close()
    await expect(requestTokenRefresh({ tokenUrl: url, refreshToken: 'r', timeoutMs: 2000 })).rejects.toMatchObject({ reason: 'network' })
  })
})
