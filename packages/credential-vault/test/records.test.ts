import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Redis from 'ioredis'
import { collectEvents } from '@gatehouse/testing'
import { createCredentialVault, keyIdOf, moveRecordsToRedis, parseEncryptionKey, rotateKey, type CredentialVault } from '@gatehouse/credential-vault'
import { anthropicKey, cleanupDirs, expectNoSecrets, newKey, oauthToken, openaiKey, recordingLogger, refreshToken, startTokenEndpoint, tmpDir, waitFor } from './helpers'

/**
 * Cluster mode's credential records in Redis (cluster.records), against a real Redis: shared by
 * every vault of the prefix, encrypted and bound to their id there, a bad record refused and reported.
 */

const vaults: CredentialVault[] = []
const clients: Redis[] = []
afterEach(async () => {
  await Promise.all(vaults.splice(0).map((v) => v.shutdown()))
  for (const c of clients.splice(0)) c.disconnect()
})
afterAll(cleanupDirs)

function redis(): Redis {
  const c = new Redis({ port: 6379, host: '127.0.0.1', maxRetriesPerRequest: 1 })
  c.on('error', () => undefined)
  clients.push(c)
  return c
}

async function vaultOn(prefix: string, key: string, extra: { dir?: string; previousKeys?: string[] } = {}) {
  const { events, onEvent } = collectEvents()
  const logger = recordingLogger()
  const vault = createCredentialVault({
    dir: extra.dir ?? tmpDir(),
    encryption: { key, ...(extra.previousKeys ? { previousKeys: extra.previousKeys } : {}) },
    watch: false,
    rescanInterval: 0,
    onEvent,
    logger,
    cluster: { client: redis(), prefix, records: true, resyncMs: 200 },
  })
  vaults.push(vault)
  await vault.start()
  return { vault, events, logger }
}

const newPrefix = (): string => `gh-records-${randomBytes(4).toString('hex')}:`

describe('credential records in Redis (cluster.records)', () => {
  it('a credential added through one vault is served by another (own directory each), and removed from both', async () => {
    const prefix = newPrefix()
    const key = newKey()
    const [a, b] = [await vaultOn(prefix, key), await vaultOn(prefix, key)]
    const token = anthropicKey()
    const { id } = await a.vault.add({ provider: 'claude', type: 'api_key', token })
    expect((await a.vault.acquire('claude'))?.credentialId).toBe(id)
    await waitFor(() => b.vault.list().some((s) => s.id === id), 1000, 'the record on b')
    expect((await b.vault.acquire('claude'))?.headers['x-api-key']).toBe(token)
    expect(b.events.filter((e) => e.result === 'credential_added').map((e) => e.details?.source)).toEqual(['redis'])
    // The writer's own change is one event (the management's), not two.
    expect(a.events.filter((e) => e.result === 'credential_added')).toHaveLength(1)

    await b.vault.revoke('claude', id)
    await waitFor(() => a.vault.list().every((s) => s.id !== id), 1000, 'the removal on a')
    expect(await a.vault.acquire('claude')).toBeUndefined()

    // What Redis holds: envelopes, never the token.
    const stored = await redis().hgetall(`${prefix}vault:records`)
    expectNoSecrets(JSON.stringify(stored), [token])
  })

  it('refuses and reports a tampered record, one moved to another id and one under another key; serves the rest', async () => {
    const prefix = newPrefix()
    const key = newKey()
    const a = await vaultOn(prefix, key)
    const good = await a.vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    const victim = await a.vault.add({ provider: 'claude', type: 'api_key', token: anthropicKey() })
    const client = redis()
    const hashKey = `${prefix}vault:records`
    const raw = (await client.hget(hashKey, victim.id))!
    // Altered: one byte of the ciphertext flipped.
    const env = JSON.parse(raw) as Record<string, string>
    const bytes = Buffer.from(env.ct!, 'base64')
    bytes[0] = bytes[0]! ^ 1
    const tampered = JSON.stringify({ ...env, ct: bytes.toString('base64') })
    // Moved: good's envelope under another id; foreign: a record sealed under another key.
    const moved = `cred_${randomBytes(12).toString('hex')}`
    const other = await vaultOn(newPrefix(), newKey())
    const foreign = await other.vault.add({ provider: 'claude', type: 'api_key', token: anthropicKey() })
    const foreignRaw = (await client.hget(`${other.vault.config.cluster!.prefix!}vault:records`, foreign.id))!
    const b = await vaultOn(prefix, key)
    await client.hset(hashKey, victim.id, tampered, moved, (await client.hget(hashKey, good.id))!, foreign.id, foreignRaw)
    await client.incr(`${hashKey}:version`)
    await waitFor(() => b.vault.status().errors.length === 3, 2000, 'three refused records')
    const codes = Object.fromEntries(b.vault.status().errors.map((e) => [e.id, e.code]))
    expect(codes[victim.id]).toBe('GH_VAULT_DECRYPT_FAILED')
    expect(codes[moved]).toBe('GH_VAULT_DECRYPT_FAILED')
    expect(['GH_VAULT_UNKNOWN_KEY_ID', 'GH_VAULT_DECRYPT_FAILED']).toContain(codes[foreign.id])
    // Not used: the tampered credential is gone from service; the good one serves.
    expect(b.vault.list().filter((s) => s.status !== 'disabled').map((s) => s.id)).toEqual([good.id])
    expect(await b.vault.acquire('claude')).toBeUndefined()
    expect((await b.vault.acquire('openai'))?.credentialId).toBe(good.id)
    const reported = b.events.filter((e) => e.event_type === 'security_violation' && e.result === 'credential_disabled')
    expect(reported.map((e) => e.details?.credential_id).sort()).toEqual([victim.id, moved, foreign.id].sort())
  })

  it('refuses a plaintext record', async () => {
    const prefix = newPrefix()
    const a = await vaultOn(prefix, newKey())
    const id = `cred_${randomBytes(12).toString('hex')}`
    const token = anthropicKey()
    const now = new Date().toISOString()
    const client = redis()
    await client.hset(`${prefix}vault:records`, id, JSON.stringify({ v: 1, id, provider: 'claude', type: 'api_key', token, created_at: now, updated_at: now }))
    await client.incr(`${prefix}vault:records:version`)
    await waitFor(() => a.vault.status().errors.length === 1, 2000, 'the refused record')
    expect(a.vault.status().errors[0]).toMatchObject({ id, code: 'GH_VAULT_PLAINTEXT_REFUSED' })
    expect(await a.vault.acquire('claude')).toBeUndefined()
    expectNoSecrets(a.logger.lines.join('\n'), [token])
  })

  it('moves a directory of files into Redis: dry run first, idempotent, never over a different record', async () => {
    const prefix = newPrefix()
    const key = newKey()
    const dir = tmpDir()
    const files = createCredentialVault({ dir, encryption: { key }, watch: false, rescanInterval: 0 })
    const one = await files.add({ provider: 'claude', type: 'api_key', token: anthropicKey() })
    const two = await files.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    await files.shutdown()
    writeFileSync(join(dir, `cred_${randomBytes(12).toString('hex')}.json`), '{"not":"encrypted"}\n', { mode: 0o600 })
    const cluster = { client: redis(), prefix }
    const dry = await moveRecordsToRedis({ dir, encryption: { key }, cluster, dryRun: true })
    expect(dry.moved.map((m) => m.id).sort()).toEqual([one.id, two.id].sort())
    expect(dry.failed).toHaveLength(1)
    expect(await redis().exists(`${prefix}vault:records`)).toBe(0)
    const done = await moveRecordsToRedis({ dir, encryption: { key }, cluster })
    expect(done.moved).toHaveLength(2)
    const again = await moveRecordsToRedis({ dir, encryption: { key }, cluster })
    expect([again.moved.length, again.present.length]).toEqual([0, 2])
    // Served by a vault with an empty directory of its own.
    const b = await vaultOn(prefix, key)
    expect((await b.vault.acquire('openai'))?.credentialId).toBe(two.id)
    // Changed in Redis since: the file's older record is not written over it.
    await b.vault.update(one.id, { label: 'changed in the cluster' })
    const conflict = await moveRecordsToRedis({ dir, encryption: { key }, cluster })
    expect(conflict.conflicts.map((c) => c.id)).toEqual([one.id])
    expect(b.vault.get(one.id)?.label).toBe('changed in the cluster')
  })
})

describe('key rotation of the records in Redis', () => {
  const kidOf = (key: string): string => keyIdOf(parseEncryptionKey(key))
  const kids = async (prefix: string): Promise<Record<string, string>> =>
    Object.fromEntries(Object.entries(await redis().hgetall(`${prefix}vault:records`)).map(([id, raw]) => [id, (JSON.parse(raw) as { kid: string }).kid]))

  it('re-seals every record and the shared OAuth tokens under the new key while a gateway with both keys serves; then the new key alone reads them all', async () => {
    const prefix = newPrefix()
    const [oldKey, nextKey] = [newKey(), newKey()]
    const endpoint = await startTokenEndpoint()
    try {
      const before = await vaultOn(prefix, oldKey)
      const tokens = [openaiKey(), anthropicKey(), openaiKey()]
      const ids: string[] = []
      for (const [i, token] of tokens.entries()) ids.push((await before.vault.add({ provider: i === 1 ? 'claude' : 'openai', type: 'api_key', token })).id)
      const oauth = { access_token: oauthToken(), refresh_token: refreshToken() }
      const { id: oauthId } = await before.vault.add({ provider: 'claude', type: 'oauth', oauth: { ...oauth, expires_at: Date.now() - 1000, token_url: endpoint.url } })
      ids.push(oauthId)
      // A refresh shares its tokens in Redis, sealed under the key of the time.
      expect(await before.vault.refreshCredential(oauthId)).toBe(true)
      const tokensKey = `${prefix}vault:oauth:${oauthId}`
      const sharedKid = async (): Promise<string> => (JSON.parse((await redis().get(tokensKey))!) as { kid: string }).kid
      expect(await sharedKid()).toBe(kidOf(oldKey))
      expect(Object.values(await kids(prefix))).toEqual(ids.map(() => kidOf(oldKey)))

      // The gateways now run with the new key and the old one among the previous keys.
      const serving = await vaultOn(prefix, nextKey, { previousKeys: [oldKey] })
      const rotation = { dir: tmpDir(), encryption: { key: nextKey, previousKeys: [oldKey] }, cluster: { client: redis(), prefix, records: true } }
      const r = await rotateKey(rotation)
      expect([...r.reencrypted].sort()).toEqual([...ids].sort())
      expect(r.tokens).toEqual({ reencrypted: [oauthId], skipped: [] })
      expect(r.failed).toEqual([])
      expect(Object.values(await kids(prefix))).toEqual(ids.map(() => kidOf(nextKey)))
      expect(await sharedKid()).toBe(kidOf(nextKey))
      // Run again: nothing left to do.
      const again = await rotateKey(rotation)
      expect([again.reencrypted, again.skipped.length, again.tokens, again.failed]).toEqual([[], ids.length, { reencrypted: [], skipped: [oauthId] }, []])
      // The gateway that served throughout still serves, and a gateway holding the new key alone
      // reads every record.
      expect((await serving.vault.acquire('openai'))?.headers.authorization).toMatch(/^Bearer sk-proj-/)
      const fresh = await vaultOn(prefix, nextKey)
      expect(fresh.vault.list().map((c) => [c.id, c.status]).sort()).toEqual(ids.map((id) => [id, 'active']).sort())
      expect(fresh.vault.status().credentials.disabled).toBe(0)
      const stored = JSON.stringify([await redis().hgetall(`${prefix}vault:records`), await redis().get(tokensKey)])
      expectNoSecrets(stored, [...tokens, oauth.access_token, oauth.refresh_token, ...endpoint.issued.flatMap((t) => [t.access_token, t.refresh_token])])
    } finally {
      await endpoint.close()
    }
  })

  it('never overwrites a record another gateway rewrote after the rotation read it: that one is read again', async () => {
    const prefix = newPrefix()
    const [oldKey, nextKey] = [newKey(), newKey()]
    const before = await vaultOn(prefix, oldKey)
    const { id } = await before.vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    const other = await before.vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    const gateway = await vaultOn(prefix, nextKey, { previousKeys: [oldKey] })
    const client = redis()
    const newer = openaiKey()
    // Another gateway updates the record between the rotation's read and its write.
    const realEval = client.eval.bind(client) as (...a: unknown[]) => Promise<unknown>
    let raced = false
    jest.spyOn(client, 'eval').mockImplementation((async (...args: unknown[]) => {
      if (!raced && String(args[0]).includes('HGET') && String(args[5] ?? '').includes(id)) {
        raced = true
        await gateway.vault.update(id, { token: newer })
      }
      return realEval(...args)
    }) as unknown as typeof client.eval)
    const r = await rotateKey({ dir: tmpDir(), encryption: { key: nextKey, previousKeys: [oldKey] }, cluster: { client, prefix, records: true } })
    expect(raced).toBe(true)
    // The raced record is already under the new key (the other gateway wrote it): skipped, its new token kept.
    expect(r).toMatchObject({ reencrypted: [other.id], skipped: [id], failed: [] })
    const reader = await vaultOn(prefix, nextKey)
    const leases = [await reader.vault.acquire('openai'), await reader.vault.acquire('openai')]
    expect(leases.map((l) => l?.credentialId).sort()).toEqual([id, other.id].sort())
    expect(leases.find((l) => l?.credentialId === id)?.headers.authorization).toBe(`Bearer ${newer}`)
  })
})
