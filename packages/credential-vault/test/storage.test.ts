import * as fs from 'node:fs'
import * as path from 'node:path'
import { collectEvents } from '@gatehouse/testing'
import { createCredentialVault, keyIdOf, parseEncryptionKey, type CredentialVault } from '@gatehouse/credential-vault'
import { anthropicKey, cleanupDirs, expectNoSecrets, modeOf, newKey, openaiKey, recordingLogger, tmpDir } from './helpers'

const vaults: CredentialVault[] = []
afterEach(async () => {
  await Promise.all(vaults.splice(0).map((v) => v.shutdown()))
})
afterAll(cleanupDirs)

function open(dir: string, key: string, extra: Partial<Parameters<typeof createCredentialVault>[0]> = {}): CredentialVault {
  const v = createCredentialVault({ dir, encryption: { key }, watch: false, rescanInterval: 0, ...extra })
  vaults.push(v)
  return v
}

const fileOf = (dir: string, id: string): string => path.join(dir, `${id}.json`)
const envelopeOf = (dir: string, id: string): Record<string, string | number> => JSON.parse(fs.readFileSync(fileOf(dir, id), 'utf8'))

describe('encryption at rest: the file format', () => {
  it('writes a versioned AES-256-GCM envelope: key id, 96-bit nonce, 128-bit tag, no plaintext', async () => {
    const dir = tmpDir()
    const key = newKey()
    const token = anthropicKey()
    const vault = open(dir, key)
    const { id } = await vault.add({ provider: 'claude', type: 'api_key', token, label: 'primary' })
    expect(id).toMatch(/^cred_[0-9a-f]{24}$/)
    const raw = fs.readFileSync(fileOf(dir, id), 'utf8')
    expect(raw).not.toContain(token)
    expect(raw).not.toContain('primary')
    expect(raw).not.toContain('claude')
    const env = JSON.parse(raw) as Record<string, string>
    expect(Object.keys(env).sort()).toEqual(['alg', 'ct', 'kid', 'nonce', 'tag', 'v'])
    expect(env).toMatchObject({ v: 1, alg: 'A256GCM', kid: keyIdOf(parseEncryptionKey(key)) })
    expect(Buffer.from(env.nonce!, 'base64')).toHaveLength(12)
    expect(Buffer.from(env.tag!, 'base64')).toHaveLength(16)
    expect(modeOf(fileOf(dir, id))).toBe(0o600)
    expect(modeOf(dir)).toBe(0o700)

    const reopened = open(dir, key)
    const lease = await reopened.acquire('claude')
    expect(lease?.headers).toEqual({ 'x-api-key': token })
  })

  it('never repeats a nonce across 1,000 writes', async () => {
    const dir = tmpDir()
    const vault = open(dir, newKey())
    const nonces: string[] = []
    // Ten credentials written 100 times each, the ten write loops running side by side.
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        const { id } = await vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
        for (let i = 0; i < 100; i++) {
          await vault.update(id, { label: `write-${i}` })
          nonces.push(String(envelopeOf(dir, id).nonce))
        }
        expect(vault.get(id)?.label).toBe('write-99')
      }),
    )
    expect(nonces).toHaveLength(1000)
    expect(new Set(nonces).size).toBe(1000)
  }, 20_000)

  it('decrypts with any configured key and writes with the current one', async () => {
    const dir = tmpDir()
    const oldKey = newKey()
    const newK = newKey()
    const old = open(dir, oldKey)
    const token = openaiKey()
    const { id } = await old.add({ provider: 'openai', type: 'api_key', token })
    const both = createCredentialVault({ dir, encryption: { key: newK, previousKeys: [oldKey] }, watch: false, rescanInterval: 0 })
    vaults.push(both)
    expect(both.get(id)).toMatchObject({ status: 'active', key_id: keyIdOf(parseEncryptionKey(oldKey)) })
    await both.update(id, { label: 'touched' })
    expect(envelopeOf(dir, id).kid).toBe(keyIdOf(parseEncryptionKey(newK)))
    expect((await both.acquire('openai'))?.headers.authorization).toBe(`Bearer ${token}`)
  })

  it('stores plaintext JSON (still 0600) when encryption is disabled', async () => {
    const dir = tmpDir()
    const vault = createCredentialVault({ dir, encryption: { enabled: false }, watch: false, rescanInterval: 0 })
    vaults.push(vault)
    const token = openaiKey()
    const { id } = await vault.add({ provider: 'openai', type: 'api_key', token })
    expect(JSON.parse(fs.readFileSync(fileOf(dir, id), 'utf8'))).toMatchObject({ v: 1, id, provider: 'openai', token })
    expect(modeOf(fileOf(dir, id))).toBe(0o600)
    expect(vault.get(id)).toMatchObject({ encrypted: false })
    expect(vault.status().encryption).toEqual({ enabled: false, key_ids: [] })
  })
})

describe('encryption at rest: altered, swapped or foreign files', () => {
  it('binds the credential id: two ciphertexts swapped between files both fail, others keep serving', async () => {
    const dir = tmpDir()
    const key = newKey()
    const { events, onEvent } = collectEvents()
    const writer = open(dir, key)
    const a = await writer.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    const b = await writer.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    const goodToken = anthropicKey()
    await writer.add({ provider: 'claude', type: 'api_key', token: goodToken })
    const bytesA = fs.readFileSync(fileOf(dir, a.id))
    const bytesB = fs.readFileSync(fileOf(dir, b.id))
    fs.writeFileSync(fileOf(dir, a.id), bytesB)
    fs.writeFileSync(fileOf(dir, b.id), bytesA)

    const reader = open(dir, key, { onEvent })
    const disabled = reader.list().filter((s) => s.status === 'disabled')
    expect(disabled.map((s) => s.id).sort()).toEqual([a.id, b.id].sort())
    for (const s of disabled) expect(s.error?.code).toBe('GH_VAULT_DECRYPT_FAILED')
    expect(await reader.acquire('openai')).toBeUndefined()
    expect((await reader.acquire('claude'))?.headers['x-api-key']).toBe(goodToken)
    const violations = events.filter((e) => e.event_type === 'security_violation' && e.result === 'credential_disabled')
    expect(violations).toHaveLength(2)
    expect(violations[0]?.details).toMatchObject({ code: 'GH_VAULT_DECRYPT_FAILED' })
    expect(String(violations[0]?.details?.reason)).toMatch(/moved from another credential/)
  })

  it.each<[string, (file: string) => void, string]>([
    ['a flipped ciphertext byte', (f) => {
      const env = JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, string>
      const ct = Buffer.from(env.ct!, 'base64')
      ct[3] = ct[3]! ^ 0x01
      fs.writeFileSync(f, JSON.stringify({ ...env, ct: ct.toString('base64') }))
    }, 'GH_VAULT_DECRYPT_FAILED'],
    ['an altered tag', (f) => {
      const env = JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, string>
      const tag = Buffer.from(env.tag!, 'base64')
      tag[0] = tag[0]! ^ 0x80
      fs.writeFileSync(f, JSON.stringify({ ...env, tag: tag.toString('base64') }))
    }, 'GH_VAULT_DECRYPT_FAILED'],
    ['a truncated file', (f) => {
      const bytes = fs.readFileSync(f)
      fs.writeFileSync(f, bytes.subarray(0, Math.floor(bytes.length / 2)))
    }, 'GH_VAULT_INVALID_FILE'],
    ['a truncated tag', (f) => {
      const env = JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, string>
      fs.writeFileSync(f, JSON.stringify({ ...env, tag: Buffer.from(env.tag!, 'base64').subarray(0, 12).toString('base64') }))
    }, 'GH_VAULT_INVALID_FILE'],
    ['an empty file', (f) => fs.writeFileSync(f, ''), 'GH_VAULT_INVALID_FILE'],
    ['a foreign key id', (f) => {
      const env = JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, string>
      fs.writeFileSync(f, JSON.stringify({ ...env, kid: 'k0123456789abcdef' }))
    }, 'GH_VAULT_UNKNOWN_KEY_ID'],
  ])('disables a credential with %s, without rewriting it, and keeps the others serving', async (_name, damage, code) => {
    const dir = tmpDir()
    const key = newKey()
    const writer = open(dir, key)
    const victim = await writer.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    const survivor = openaiKey()
    const other = await writer.add({ provider: 'openai', type: 'api_key', token: survivor })
    damage(fileOf(dir, victim.id))
    const before = fs.readFileSync(fileOf(dir, victim.id))
    const mtimeBefore = fs.statSync(fileOf(dir, victim.id)).mtimeMs

    const { events, onEvent } = collectEvents()
    const reader = open(dir, key, { onEvent })
    expect(reader.get(victim.id)).toMatchObject({ status: 'disabled', error: { code } })
    for (let i = 0; i < 4; i++) {
      const lease = await reader.acquire('openai')
      expect(lease?.credentialId).toBe(other.id)
      expect(lease?.headers.authorization).toBe(`Bearer ${survivor}`)
    }
    reader.reload()
    await reader.reencryptAll({ force: true })
    expect(fs.readFileSync(fileOf(dir, victim.id)).equals(before)).toBe(true)
    expect(fs.statSync(fileOf(dir, victim.id)).mtimeMs).toBe(mtimeBefore)
    const disabled = events.filter((e) => e.result === 'credential_disabled')
    expect(disabled).toHaveLength(1)
    expect(disabled[0]).toMatchObject({ event_type: 'security_violation', details: { credential_id: victim.id, code } })
    expect(reader.status().errors).toEqual([expect.objectContaining({ id: victim.id, code })])
  })

  it('refuses every file under a wrong key with a clear event, and serves the static key meanwhile', async () => {
    const dir = tmpDir()
    const writer = open(dir, newKey())
    const t1 = openaiKey()
    await writer.add({ provider: 'openai', type: 'api_key', token: t1 })
    const staticKey = openaiKey()
    const logger = recordingLogger()
    const { events, onEvent } = collectEvents()
    const wrongKey = newKey()
    const reader = open(dir, wrongKey, { onEvent, logger, staticCredentials: { openai: staticKey } })
    expect(reader.list().filter((s) => s.status === 'disabled')).toHaveLength(1)
    expect(events.find((e) => e.result === 'credential_disabled')?.details).toMatchObject({ code: 'GH_VAULT_UNKNOWN_KEY_ID' })
    const lease = await reader.acquire('openai')
    expect(lease).toMatchObject({ credentialId: 'static_openai', source: 'static' })
    expectNoSecrets([events, logger.lines, reader.list(), reader.status(), reader.config], [t1, staticKey, wrongKey, Buffer.from(wrongKey, 'base64').toString('hex')])
  })
})
