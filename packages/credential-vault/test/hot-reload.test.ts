import * as fs from 'node:fs'
import * as path from 'node:path'
import { collectEvents, fakeClock, type FakeClock } from '@gatehouse/testing'
import { createCredentialVault, type CredentialVault } from '@gatehouse/credential-vault'
import { anthropicKey, cleanupDirs, newKey, openaiKey, sleep, tmpDir, waitFor } from './helpers'

const vaults: CredentialVault[] = []
let clock: FakeClock | undefined
afterEach(async () => {
  clock?.restore()
  await Promise.all(vaults.splice(0).map((v) => v.shutdown()))
})
afterAll(cleanupDirs)

function open(dir: string, key: string, extra: Partial<Parameters<typeof createCredentialVault>[0]> = {}): CredentialVault {
  const v = createCredentialVault({ dir, encryption: { key }, ...extra })
  vaults.push(v)
  return v
}

const tokenFor = async (vault: CredentialVault): Promise<string | undefined> => (await vault.acquire('openai'))?.headers.authorization

describe('hot reload (fs.watch)', () => {
  it('serves a credential added, changed and removed on disk, without a restart', async () => {
    const dir = tmpDir()
    const key = newKey()
    const { events, onEvent } = collectEvents()
    const server = open(dir, key, { onEvent, rescanInterval: 0, reloadDebounce: '20ms' })
    const cli = open(dir, key, { watch: false, rescanInterval: 0 })
    expect(await server.acquire('openai')).toBeUndefined()

    const t1 = openaiKey()
    const { id } = await cli.add({ provider: 'openai', type: 'api_key', token: t1 })
    await waitFor(() => server.get(id) !== undefined, 3000, 'the added file')
    expect(await tokenFor(server)).toBe(`Bearer ${t1}`)

    const t2 = openaiKey()
    await cli.update(id, { token: t2 })
    await waitFor(() => events.some((e) => e.result === 'credential_changed'), 3000, 'the changed file')
    expect(await tokenFor(server)).toBe(`Bearer ${t2}`)

    fs.rmSync(path.join(dir, `${id}.json`))
    await waitFor(() => server.get(id) === undefined, 3000, 'the removal')
    expect(await server.acquire('openai')).toBeUndefined()

    expect(events.filter((e) => e.details?.source === 'disk').map((e) => e.result)).toEqual([
      'credential_added',
      'credential_changed',
      'credential_removed',
    ])
    for (const e of events) expect(JSON.stringify(e)).not.toMatch(new RegExp(`${t1}|${t2}`))
  })

  it('loads a file copied in with plain file-system tools', async () => {
    const staging = tmpDir()
    const dir = tmpDir()
    const key = newKey()
    const other = open(staging, key, { watch: false, rescanInterval: 0 })
    const token = anthropicKey()
    const { id } = await other.add({ provider: 'claude', type: 'api_key', token })
    const server = open(dir, key, { rescanInterval: 0, reloadDebounce: '20ms' })
    fs.copyFileSync(path.join(staging, `${id}.json`), path.join(dir, `${id}.json`))
    fs.chmodSync(path.join(dir, `${id}.json`), 0o600)
    await waitFor(() => server.get(id)?.status === 'active', 3000, 'the copied file')
    expect((await server.acquire('claude'))?.headers['x-api-key']).toBe(token)
  })

  it('disables a file corrupted on disk and re-enables it once repaired', async () => {
    const dir = tmpDir()
    const key = newKey()
    const { events, onEvent } = collectEvents()
    const server = open(dir, key, { onEvent, rescanInterval: 0, reloadDebounce: '20ms' })
    const { id } = await server.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    const file = path.join(dir, `${id}.json`)
    const good = fs.readFileSync(file)
    fs.writeFileSync(file, good.subarray(0, 40))
    await waitFor(() => server.get(id)?.status === 'disabled', 3000, 'the corrupted file')
    expect(events.find((e) => e.result === 'credential_disabled')?.details).toMatchObject({ code: 'GH_VAULT_INVALID_FILE' })
    fs.writeFileSync(file, good)
    await waitFor(() => server.get(id)?.status === 'active', 3000, 'the repaired file')
  })

  it('emits nothing for its own writes', async () => {
    const dir = tmpDir()
    const { events, onEvent } = collectEvents()
    const server = open(dir, newKey(), { onEvent, rescanInterval: 0, reloadDebounce: '20ms' })
    const { id } = await server.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    await server.update(id, { label: 'x' })
    await sleep(200) // real time: what must not come is an fs.watch event
    expect(events.filter((e) => e.details?.source === 'disk')).toEqual([])
  })

  it('debounces a burst of changes into few reloads and ends on the last version', async () => {
    const dir = tmpDir()
    const key = newKey()
    const { events, onEvent } = collectEvents()
    const server = open(dir, key, { onEvent, rescanInterval: 0, reloadDebounce: '300ms' })
    const cli = open(dir, key, { watch: false, rescanInterval: 0 })
    const { id } = await cli.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    await waitFor(() => server.get(id) !== undefined, 3000)
    let last = ''
    for (let i = 0; i < 20; i++) {
      last = openaiKey()
      await cli.update(id, { token: last })
    }
    await waitFor(() => server.get(id) !== undefined && events.some((e) => e.result === 'credential_changed'), 3000)
    await sleep(400) // real time: the reloads follow fs.watch events, which come when the OS sends them
    expect(await tokenFor(server)).toBe(`Bearer ${last}`)
    expect(events.filter((e) => e.result === 'credential_changed').length).toBeLessThanOrEqual(3)
  })
})

describe('periodic rescan (the fs.watch fallback)', () => {
  it('picks up changes with watching off', async () => {
    clock = fakeClock()
    const dir = tmpDir()
    const key = newKey()
    const server = open(dir, key, { watch: false, rescanInterval: '100ms' })
    const cli = open(dir, key, { watch: false, rescanInterval: 0 })
    const token = openaiKey()
    const { id } = await cli.add({ provider: 'openai', type: 'api_key', token })
    await clock.advance(99)
    expect(server.get(id)).toBeUndefined()
    await clock.advance(1)
    await clock.until(() => server.get(id) !== undefined, 2000, 'the periodic rescan')
    expect(await tokenFor(server)).toBe(`Bearer ${token}`)
    await cli.revoke('openai', id)
    await clock.advance(100)
    await clock.until(() => server.get(id) === undefined, 2000, 'the periodic rescan to drop it')
  })
})
