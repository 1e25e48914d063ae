import { randomBytes } from 'node:crypto'
import Redis from 'ioredis'
import { collectEvents } from '@gatehouse/testing'
import { createCredentialVault, type CredentialVault } from '@gatehouse/credential-vault'
import { cleanupDirs, expectNoSecrets, newKey, oauthToken, recordingLogger, refreshToken, startTokenEndpoint, tmpDir, type TokenEndpoint } from './helpers'

/**
 * Cluster mode: several vaults (one per gateway) holding the same OAuth credential, one Redis.
 * Providers rotate refresh tokens, so two gateways refreshing the same one race and the loser's
 * invalid_grant takes the credential out: exactly one may refresh.
 */

const vaults: CredentialVault[] = []
const endpoints: TokenEndpoint[] = []
const clients: Redis[] = []
afterEach(async () => {
  await Promise.all(vaults.splice(0).map((v) => v.shutdown()))
  await Promise.all(endpoints.splice(0).map((e) => e.close()))
  for (const c of clients.splice(0)) c.disconnect()
})
afterAll(cleanupDirs)

function redis(port = 6379): Redis {
  const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, enableOfflineQueue: port === 6379, retryStrategy: () => null })
  c.on('error', () => undefined)
  clients.push(c)
  return c
}

/** Three gateways' vaults over the same credential files, one Redis, one prefix of this test's own. */
async function cluster(options: { leaseMs?: number; client?: () => Redis } = {}) {
  const dir = tmpDir()
  const key = newKey()
  const prefix = `gh-vault-${randomBytes(4).toString('hex')}:`
  const endpoint = await startTokenEndpoint()
  endpoints.push(endpoint)
  const access = oauthToken()
  const refresh = refreshToken()
  const seed = createCredentialVault({ dir, encryption: { key }, watch: false, rescanInterval: 0 })
  const { id } = await seed.add({ provider: 'claude', type: 'oauth', oauth: { access_token: access, refresh_token: refresh, expires_at: Date.now() - 1000, token_url: endpoint.url } })
  await seed.shutdown()
  const { events, onEvent } = collectEvents()
  const logger = recordingLogger()
  const replicas = [0, 1, 2].map(() => {
    const v = createCredentialVault({
      dir,
      encryption: { key },
      watch: false,
      rescanInterval: 0,
      onEvent,
      logger,
      cluster: { client: (options.client ?? redis)(), prefix, ...(options.leaseMs ? { leaseMs: options.leaseMs } : {}) },
    })
    vaults.push(v)
    return v
  })
  return { id, access, refresh, prefix, endpoint, replicas, events, logger }
}

describe('OAuth refresh across a cluster', () => {
  it('makes exactly one refresh call for 20 concurrent requests spread over three gateways, and every gateway uses its tokens', async () => {
    const c = await cluster()
    c.endpoint.delayMs = 200
    const leases = await Promise.all(Array.from({ length: 20 }, (_, i) => c.replicas[i % 3]!.acquire('claude')))
    expect(c.endpoint.calls).toHaveLength(1)
    const issued = c.endpoint.issued[0]!
    for (const lease of leases) expect(lease?.headers.authorization).toBe(`Bearer ${issued.access_token}`)
    expect(Object.fromEntries(c.endpoint.calls[0]!.form)).toMatchObject({ grant_type: 'refresh_token', refresh_token: c.refresh })
    const refreshes = c.events.filter((e) => e.event_type === 'token_refresh' && e.result === 'success')
    expect(refreshes.map((e) => e.details?.source).sort()).toEqual(['refreshed', 'shared', 'shared'])

    // A refresh asked of each gateway in turn: the first refreshes with the rotated refresh token,
    // the other two take its tokens.
    for (const v of c.replicas) expect(await v.refreshCredential(c.id)).toBe(true)
    expect(c.endpoint.calls).toHaveLength(2)
    expect(c.endpoint.calls[1]!.form.get('refresh_token')).toBe(issued.refresh_token)
    const second = c.endpoint.issued[1]!
    for (const v of c.replicas) expect((await v.acquire('claude'))?.headers.authorization).toBe(`Bearer ${second.access_token}`)

    // Nothing in Redis or in any sink is a token.
    const client = redis()
    const stored = (await client.keys(`${c.prefix}*`)).map((k) => k)
    expect(stored).toContain(`${c.prefix}vault:oauth:${c.id}`)
    const values = await Promise.all(stored.map((k) => client.get(k)))
    const secrets = [c.access, c.refresh, ...c.endpoint.issued.flatMap((t) => [t.access_token, t.refresh_token])]
    expectNoSecrets([values, c.events, c.logger.lines], secrets)
  })

  it('does not stop refreshing when the gateway holding the lock died: the next refresh waits out its lease', async () => {
    const c = await cluster({ leaseMs: 1500 })
    // A gateway that took the lock and was killed before it refreshed: its lock outlives it until the lease ends.
    await redis().set(`${c.prefix}vault:oauth:${c.id}:lock`, 'dead-gateway', 'PX', 1500)
    const started = Date.now()
    const lease = await c.replicas[1]!.acquire('claude')
    const waited = Date.now() - started
    expect(waited).toBeGreaterThanOrEqual(1200)
    expect(waited).toBeLessThan(5000)
    expect(c.endpoint.calls).toHaveLength(1)
    expect(lease?.headers.authorization).toBe(`Bearer ${c.endpoint.issued[0]!.access_token}`)
  })

  it('refreshes without coordination (logged) when the Redis is out of reach, rather than not at all', async () => {
    const c = await cluster({ client: () => redis(1) })
    const lease = await c.replicas[0]!.acquire('claude')
    expect(c.endpoint.calls).toHaveLength(1)
    expect(lease?.headers.authorization).toBe(`Bearer ${c.endpoint.issued[0]!.access_token}`)
    expect(c.logger.lines.join('\n')).toMatch(/Redis is unreachable; refreshing this OAuth token without coordination/)
  })

  it('refuses cluster mode without encryption (the shared tokens would be plaintext) and without a client', () => {
    expect(() => createCredentialVault({ dir: tmpDir(), encryption: { enabled: false }, cluster: { client: redis() } })).toThrow(/cluster: needs encryption on/)
    expect(() => createCredentialVault({ dir: tmpDir(), encryption: { key: newKey() }, cluster: { client: {} as never } })).toThrow(/cluster: needs \{ client: an ioredis client \}/)
  })
})
