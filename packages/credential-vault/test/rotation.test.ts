import * as fs from 'node:fs'
import * as path from 'node:path'
import express from 'express'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { MockUpstream, collectEvents, listen } from '@gatehouse/testing'
import {
  createCredentialVault,
  credentialInjection,
  keyIdOf,
  migrate,
  parseEncryptionKey,
  rotateKey,
  type CredentialVault,
} from '@gatehouse/credential-vault'
import { anthropicKey, cleanupDirs, expectNoSecrets, newKey, openaiKey, tmpDir, waitFor } from './helpers'

const vaults: CredentialVault[] = []
afterEach(async () => {
  await Promise.all(vaults.splice(0).map((v) => v.shutdown()))
})
afterAll(cleanupDirs)

const kidOf = (key: string): string => keyIdOf(parseEncryptionKey(key))
const kidsOnDisk = (dir: string): string[] =>
  fs
    .readdirSync(dir)
    .filter((n) => /^cred_.*\.json$/.test(n))
    .map((n) => (JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')) as { kid: string }).kid)

function open(dir: string, encryption: { key: string; previousKeys?: string[] }, extra: Partial<Parameters<typeof createCredentialVault>[0]> = {}) {
  const v = createCredentialVault({ dir, encryption, watch: false, rescanInterval: 0, ...extra })
  vaults.push(v)
  return v
}

describe('key rotation', () => {
  it('re-encrypts every file under the new key while requests keep flowing (none dropped)', async () => {
    const dir = tmpDir()
    const oldKey = newKey()
    const nextKey = newKey()
    const seed = open(dir, { key: oldKey })
    const tokens = Array.from({ length: 12 }, () => openaiKey())
    for (const token of tokens) await seed.add({ provider: 'openai', type: 'api_key', token })
    await seed.shutdown()

    const upstream = await MockUpstream.start()
    const { events, onEvent } = collectEvents()
    const server = open(dir, { key: nextKey, previousKeys: [oldKey] }, { watch: true, reloadDebounce: '10ms', onEvent })
    const app = express()
    app.use(credentialInjection({ vault: server }))
    app.use(createProxyMiddleware({ target: upstream.url, changeOrigin: true }))
    const gw = await listen(app)
    try {
      const statuses: number[] = []
      let rotating = true
      const client = async (): Promise<void> => {
        let after = 0
        while (rotating || after++ < 10) {
          const res = await fetch(`${gw.url}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: 'Bearer gate_live_client' },
            body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
          })
          await res.arrayBuffer()
          statuses.push(res.status)
        }
      }
      const clients = Array.from({ length: 4 }, () => client())
      await waitFor(() => statuses.length >= 8, 5000, 'the load to start')
      const beforeRotation = statuses.length
      // The CLI (`gatehouse vault rotate-key`) runs in its own vault instance.
      const result = await rotateKey({ dir, encryption: { key: nextKey, previousKeys: [oldKey] } })
      rotating = false
      const duringRotation = statuses.length - beforeRotation
      await Promise.all(clients)

      expect(result.reencrypted).toHaveLength(12)
      expect(result.failed).toEqual([])
      expect(duringRotation).toBeGreaterThan(0)
      expect(statuses.filter((s) => s !== 200)).toEqual([])
      const used = new Set(upstream.requests.map((r) => r.headers.authorization))
      for (const u of used) expect(tokens.map((t) => `Bearer ${t}`)).toContain(u)
      expect(kidsOnDisk(dir)).toEqual(Array(12).fill(kidOf(nextKey)))

      // The running server saw the rewritten files by hot reload, silently (same content).
      await waitFor(() => server.list().every((c) => c.key_id === kidOf(nextKey)), 3000, 'hot reload of the re-encrypted files')
      expect(server.status().errors).toEqual([])
      expect(events.filter((e) => e.result === 'credential_changed' || e.result === 'credential_disabled')).toEqual([])
      expectNoSecrets(events, tokens)
    } finally {
      await gw.close()
      await upstream.close()
    }

    // The old key can now go.
    const newOnly = open(dir, { key: nextKey })
    expect(newOnly.list()).toHaveLength(12)
    expect(newOnly.status().errors).toEqual([])
    const oldOnly = open(dir, { key: oldKey })
    expect(oldOnly.status().errors.map((e) => e.code)).toEqual(Array(12).fill('GH_VAULT_UNKNOWN_KEY_ID'))
  }, 20_000)

  it('skips files already under the current key unless forced, and never rewrites a disabled file', async () => {
    const dir = tmpDir()
    const key = newKey()
    const v = open(dir, { key })
    await v.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    const bad = path.join(dir, 'cred_bbbbbbbbbbbbbbbbbbbbbbbb.json')
    fs.writeFileSync(bad, '{"v":1,"kid":"k0000000000000000","alg":"A256GCM","nonce":"","tag":"","ct":""}', { mode: 0o600 })
    const before = fs.readFileSync(bad)
    const { events, onEvent } = collectEvents()
    const first = await rotateKey({ dir, encryption: { key }, onEvent })
    expect(first.reencrypted).toEqual([])
    expect(first.skipped).toHaveLength(1)
    expect(first.failed).toEqual([expect.objectContaining({ file: 'cred_bbbbbbbbbbbbbbbbbbbbbbbb.json', code: 'GH_VAULT_INVALID_FILE' })])
    const forced = await rotateKey({ dir, encryption: { key }, force: true })
    expect(forced.reencrypted).toHaveLength(1)
    expect(fs.readFileSync(bad).equals(before)).toBe(true)
    expect(events.find((e) => e.result === 'vault_reencrypted')).toMatchObject({
      event_type: 'config_change',
      details: { key_id: kidOf(key), reencrypted: 0, skipped: 1, failed: 1 },
    })
  })

  it('never overwrites a newer version written by another process during rotation (compare-and-swap)', async () => {
    const dir = tmpDir()
    const oldKey = newKey()
    const nextKey = newKey()
    const cli = open(dir, { key: nextKey, previousKeys: [oldKey] })
    const server = open(dir, { key: oldKey })
    const { id } = await server.add({ provider: 'claude', type: 'api_key', token: anthropicKey() })
    cli.reload()
    // The server rewrites the credential after the CLI has read it.
    const newer = anthropicKey()
    await server.update(id, { token: newer })
    const result = await cli.reencryptAll()
    expect(result.reencrypted).toEqual([id])
    const check = open(dir, { key: nextKey })
    expect(check.export({ includeSecrets: true }).credentials[0]?.token).toBe(newer)
    expect(kidsOnDisk(dir)).toEqual([kidOf(nextKey)])
  })

  it('refuses to run without encryption', async () => {
    const v = createCredentialVault({ dir: tmpDir(), encryption: { enabled: false }, watch: false, rescanInterval: 0 })
    vaults.push(v)
    await expect(v.reencryptAll()).rejects.toMatchObject({ code: 'GH_VAULT_KEY_MISSING' })
    await expect(v.migrate()).rejects.toMatchObject({ code: 'GH_VAULT_KEY_MISSING' })
  })
})

describe('migrate (gatehouse vault migrate)', () => {
  it('encrypts plaintext credential files in place and leaves everything else alone', async () => {
    const dir = tmpDir()
    const key = newKey()
    const ak = anthropicKey()
    const ok = openaiKey()
    const access = `sk-ant-oat01-${'a'.repeat(40)}`
    const refresh = `sk-ant-ort01-${'b'.repeat(40)}`
    // Written while encryption was off: a vault file in plaintext.
    const plain = createCredentialVault({ dir, encryption: { enabled: false }, watch: false, rescanInterval: 0 })
    const plainId = (await plain.add({ provider: 'openai', type: 'api_key', token: ok })).id
    await plain.shutdown()
    // Per-domain credential files, as another proxy kept them (one world-readable).
    fs.writeFileSync(path.join(dir, 'example.com.credentials.json'), JSON.stringify({ type: 'api_key', accountId: 'acc_1', api_key: ak, client_api_key: 'cnp_live_x' }), { mode: 0o644 })
    fs.writeFileSync(
      path.join(dir, 'team.credentials.json'),
      JSON.stringify({ type: 'oauth', accountId: 'acc_2', oauth: { accessToken: access, refreshToken: refresh, expiresAt: 1_900_000_000_000, tokenUrl: 'https://console.anthropic.com/v1/oauth/token', scopes: ['user:inference'], isMax: true } }),
      { mode: 0o600 },
    )
    // Not credentials: another component's JSON, junk, and a symlink.
    fs.writeFileSync(path.join(dir, 'keys.json'), JSON.stringify({ keys: [] }), { mode: 0o600 })
    fs.writeFileSync(path.join(dir, 'broken.json'), '{nope', { mode: 0o600 })
    const outside = path.join(tmpDir(), 'outside.json')
    fs.writeFileSync(outside, JSON.stringify({ type: 'api_key', api_key: anthropicKey() }))
    fs.symlinkSync(outside, path.join(dir, 'linked.json'))

    const dry = await migrate({ dir, encryption: { key }, dryRun: true })
    expect(dry.migrated.map((m) => m.file).sort()).toEqual([`${plainId}.json`, 'example.com.credentials.json', 'team.credentials.json'])
    expect(fs.existsSync(path.join(dir, 'example.com.credentials.json'))).toBe(true)

    const { events, onEvent } = collectEvents()
    const result = await migrate({ dir, encryption: { key }, onEvent })
    expect(result.migrated).toEqual(
      expect.arrayContaining([
        { file: `${plainId}.json`, id: plainId, provider: 'openai' },
        { file: 'example.com.credentials.json', id: expect.stringMatching(/^cred_[0-9a-f]{24}$/), provider: 'claude' },
        { file: 'team.credentials.json', id: expect.stringMatching(/^cred_[0-9a-f]{24}$/), provider: 'claude' },
      ]),
    )
    expect(result.skipped.map((s) => s.file).sort()).toEqual(['broken.json', 'keys.json', 'linked.json'])
    expect(result.skipped.find((s) => s.file === 'linked.json')?.reason).toMatch(/symlink/)
    expect(fs.existsSync(path.join(dir, 'example.com.credentials.json'))).toBe(false)
    expect(fs.existsSync(path.join(dir, 'keys.json'))).toBe(true)
    expect(fs.existsSync(outside)).toBe(true)
    for (const n of fs.readdirSync(dir).filter((n) => n.startsWith('cred_'))) {
      const raw = fs.readFileSync(path.join(dir, n), 'utf8')
      expectNoSecrets(raw, [ak, ok, access, refresh])
      expect(fs.statSync(path.join(dir, n)).mode & 0o777).toBe(0o600)
    }
    expectNoSecrets([result, events], [ak, ok, access, refresh])
    expect(events.find((e) => e.result === 'vault_migrated')?.details).toMatchObject({ migrated: 3, failed: 0 })

    const vault = open(dir, { key })
    expect(vault.list().map((c) => [c.provider, c.type, c.encrypted]).sort()).toEqual([
      ['claude', 'api_key', true],
      ['claude', 'oauth', true],
      ['openai', 'api_key', true],
    ])
    const oauth = vault.export({ includeSecrets: true }).credentials.find((c) => c.type === 'oauth')
    expect(oauth?.oauth).toMatchObject({ access_token: access, refresh_token: refresh, expires_at: 1_900_000_000_000, scope: 'user:inference' })

    const again = await migrate({ dir, encryption: { key } })
    expect(again.migrated).toEqual([])
  })

  it('reports a credential-shaped file it cannot convert, and leaves it in place', async () => {
    const dir = tmpDir()
    fs.writeFileSync(path.join(dir, 'mystery.json'), JSON.stringify({ type: 'api_key', api_key: 'no-known-prefix-token' }), { mode: 0o600 })
    const result = await migrate({ dir, encryption: { key: newKey() } })
    expect(result.failed).toEqual([expect.objectContaining({ file: 'mystery.json', code: 'GH_VAULT_INVALID_CREDENTIAL', message: expect.stringContaining('provider') })])
    expect(result.failed[0]?.message).not.toContain('no-known-prefix-token')
    expect(fs.existsSync(path.join(dir, 'mystery.json'))).toBe(true)
  })
})
