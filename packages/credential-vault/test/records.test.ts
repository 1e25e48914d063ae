import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Redis from 'ioredis'
import { collectEvents } from '@gatehouse/testing'
import { createCredentialVault, moveRecordsToRedis, type CredentialVault } from '@gatehouse/credential-vault'
import { anthropicKey, cleanupDirs, expectNoSecrets, newKey, openaiKey, recordingLogger, tmpDir, waitFor } from './helpers'

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

async function vaultOn(prefix: string, key: string, extra: { dir?: string } = {}) {
  const { events, onEvent } = collectEvents()
  const logger = recordingLogger()
  const vault = createCredentialVault({
    dir: extra.dir ?? tmpDir(),
    encryption: { key },
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
