import * as fs from 'node:fs'
import * as path from 'node:path'
import { collectEvents } from '@gatehouse/testing'
import { createCredentialVault, migrate, type CredentialVault } from '@gatehouse/credential-vault'
import { cleanupDirs, newKey, openaiKey, tmpDir, waitFor } from './helpers'

const vaults: CredentialVault[] = []
afterEach(async () => {
  await Promise.all(vaults.splice(0).map((v) => v.shutdown()))
})
afterAll(cleanupDirs)

function open(dir: string, encryption: { key: string } | { enabled: false }, extra: Partial<Parameters<typeof createCredentialVault>[0]> = {}): CredentialVault {
  const v = createCredentialVault({ dir, encryption, ...extra })
  vaults.push(v)
  return v
}

/** A plaintext vault file, as a vault without encryption writes it: what an attacker without the key can plant. */
async function plant(dir: string, token: string): Promise<string> {
  const staging = tmpDir()
  const plain = createCredentialVault({ dir: staging, encryption: { enabled: false }, watch: false, rescanInterval: 0 })
  const { id } = await plain.add({ provider: 'openai', type: 'api_key', token })
  await plain.shutdown()
  fs.copyFileSync(path.join(staging, `${id}.json`), path.join(dir, `${id}.json`))
  fs.chmodSync(path.join(dir, `${id}.json`), 0o600)
  return id
}

describe('a vault with encryption on refuses plaintext files (no downgrade)', () => {
  it('refuses a plaintext file present at start: credential_disabled, never served, listed as an error', async () => {
    const dir = tmpDir()
    const key = newKey()
    const planted = openaiKey()
    const id = await plant(dir, planted)
    const { events, onEvent } = collectEvents()
    const logs: string[] = []
    const logger = { error: (m: string) => logs.push(m), warn: (m: string) => logs.push(m), info: () => undefined, debug: () => undefined }
    const vault = open(dir, { key }, { onEvent, logger, watch: false, rescanInterval: 0 })
    expect(await vault.acquire('openai')).toBeUndefined()
    expect(vault.list()).toEqual([expect.objectContaining({ id, status: 'disabled', error: expect.objectContaining({ code: 'GH_VAULT_PLAINTEXT_REFUSED' }) })])
    expect(vault.status().errors).toEqual([
      { file: `${id}.json`, id, code: 'GH_VAULT_PLAINTEXT_REFUSED', message: expect.stringContaining('gatehouse vault migrate') },
    ])
    const disabled = events.filter((e) => e.result === 'credential_disabled')
    expect(disabled).toEqual([
      expect.objectContaining({ event_type: 'security_violation', details: expect.objectContaining({ credential_id: id, code: 'GH_VAULT_PLAINTEXT_REFUSED' }) }),
    ])
    expect(logs.some((l) => l.includes('credential disabled') && l.includes('not encrypted'))).toBe(true)
    expect(JSON.stringify([events, logs, vault.status()])).not.toContain(planted)
  })

  it('refuses a plaintext file planted while running, and one written over an encrypted credential', async () => {
    const dir = tmpDir()
    const key = newKey()
    const { events, onEvent } = collectEvents()
    const vault = open(dir, { key }, { onEvent, rescanInterval: 0, reloadDebounce: '20ms' })
    const own = openaiKey()
    const { id: ownId } = await vault.add({ provider: 'openai', type: 'api_key', token: own })
    const planted = openaiKey()
    const plantedId = await plant(dir, planted)
    await waitFor(() => events.some((e) => e.result === 'credential_disabled' && e.details?.credential_id === plantedId), 3000, 'the refusal')
    for (let i = 0; i < 4; i++) expect((await vault.acquire('openai'))?.headers.authorization).toBe(`Bearer ${own}`)

    // Overwrite the operator's own encrypted file with a plaintext one of the same id.
    const staging = tmpDir()
    const plain = createCredentialVault({ dir: staging, encryption: { enabled: false }, watch: false, rescanInterval: 0 })
    await plain.add({ provider: 'openai', type: 'api_key', token: planted })
    const [stagedName] = fs.readdirSync(staging).filter((n) => n.startsWith('cred_'))
    const body = JSON.parse(fs.readFileSync(path.join(staging, stagedName!), 'utf8')) as Record<string, unknown>
    await plain.shutdown()
    fs.writeFileSync(path.join(dir, `${ownId}.json.tmp`), JSON.stringify({ ...body, id: ownId }), { mode: 0o600 })
    fs.renameSync(path.join(dir, `${ownId}.json.tmp`), path.join(dir, `${ownId}.json`))
    await waitFor(() => events.some((e) => e.result === 'credential_disabled' && e.details?.credential_id === ownId), 3000, 'the second refusal')
    expect(await vault.acquire('openai')).toBeUndefined()
    expect(JSON.stringify(events)).not.toContain(planted)
  })

  it('still loads plaintext files when encryption is off, and migrate encrypts a refused one', async () => {
    const dir = tmpDir()
    const token = openaiKey()
    const id = await plant(dir, token)
    const off = open(dir, { enabled: false }, { watch: false, rescanInterval: 0 })
    expect((await off.acquire('openai'))?.headers.authorization).toBe(`Bearer ${token}`)
    const key = newKey()
    const result = await migrate({ dir, encryption: { key } })
    expect(result.migrated).toEqual([{ file: `${id}.json`, id, provider: 'openai' }])
    expect(fs.readFileSync(path.join(dir, `${id}.json`), 'utf8')).not.toContain(token)
    const on = open(dir, { key }, { watch: false, rescanInterval: 0 })
    expect((await on.acquire('openai'))?.headers.authorization).toBe(`Bearer ${token}`)
    expect(on.status().errors).toEqual([])
  })
})
