import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { collectEvents } from '@gatehouse/testing'
import { createCredentialVault, type CredentialVault } from '@gatehouse/credential-vault'
import { cleanupDirs, modeOf, newKey, openaiKey, tmpDir } from './helpers'

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

/** A vault dir with one credential to damage and one that must keep serving. */
async function seeded(): Promise<{ dir: string; key: string; victim: string; survivor: string; file: string }> {
  const dir = tmpDir()
  const key = newKey()
  const w = open(dir, key)
  const victim = (await w.add({ provider: 'openai', type: 'api_key', token: openaiKey() })).id
  const survivor = (await w.add({ provider: 'openai', type: 'api_key', token: openaiKey() })).id
  await w.shutdown()
  return { dir, key, victim, survivor, file: path.join(dir, `${victim}.json`) }
}

const isRoot = process.getuid?.() === 0

describe('modes enforced at every write', () => {
  it('writes 0600 files even under a permissive umask', async () => {
    const dir = tmpDir()
    const vault = open(dir, newKey())
    const previous = process.umask(0)
    try {
      const { id } = await vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
      expect(modeOf(path.join(dir, `${id}.json`))).toBe(0o600)
      await vault.update(id, { label: 'again' })
      expect(modeOf(path.join(dir, `${id}.json`))).toBe(0o600)
    } finally {
      process.umask(previous)
    }
  })

  it('sets a directory loosened at run time back to 0700 on the next write, with an event', async () => {
    const dir = tmpDir()
    const { events, onEvent } = collectEvents()
    const vault = open(dir, newKey(), { onEvent })
    fs.chmodSync(dir, 0o755)
    await vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    expect(modeOf(dir)).toBe(0o700)
    vault.reload()
    fs.chmodSync(dir, 0o777)
    vault.reload()
    expect(modeOf(dir)).toBe(0o700)
    expect(events.filter((e) => e.result === 'permissions_fixed')).toEqual([
      expect.objectContaining({ event_type: 'config_change', details: expect.objectContaining({ reason: expect.stringContaining('0755') }) }),
      expect.objectContaining({ event_type: 'config_change', details: expect.objectContaining({ reason: expect.stringContaining('0777') }) }),
    ])
  })

  it('leaves no temporary file behind after writes', async () => {
    const dir = tmpDir()
    const vault = open(dir, newKey())
    const { id } = await vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    for (let i = 0; i < 5; i++) await vault.update(id, { label: `l${i}` })
    expect(fs.readdirSync(dir)).toEqual([`${id}.json`])
  })
})

describe('modes verified at every read', () => {
  it.each<[string, (file: string, dir: string) => void, RegExp]>([
    ['group-readable (0640)', (f) => fs.chmodSync(f, 0o640), /has mode 0640 \(group or world access\); expected 0600/],
    ['world-readable (0644)', (f) => fs.chmodSync(f, 0o644), /has mode 0644/],
    ['world-writable (0602)', (f) => fs.chmodSync(f, 0o602), /has mode 0602/],
    ['a symlink to a real vault file', (f, dir) => {
      const target = path.join(tmpDir(), 'elsewhere.json')
      fs.renameSync(f, target)
      fs.symlinkSync(target, f)
      void dir
    }, /symlink/],
    ['a directory', (f) => {
      fs.rmSync(f)
      fs.mkdirSync(f)
    }, /not a regular file/],
    ['a FIFO (must not block the loader)', (f) => {
      fs.rmSync(f)
      execFileSync('mkfifo', ['-m', '0600', f])
    }, /not a regular file/],
  ])('refuses a file that is %s with the reason; the others keep serving', async (_name, damage, reason) => {
    const s = await seeded()
    damage(s.file, s.dir)
    const { events, onEvent } = collectEvents()
    const vault = open(s.dir, s.key, { onEvent })
    const summary = vault.get(s.victim)
    expect(summary).toMatchObject({ status: 'disabled', error: { code: 'GH_VAULT_INSECURE_FILE' } })
    expect(summary?.error?.message).toMatch(reason)
    expect((await vault.acquire('openai'))?.credentialId).toBe(s.survivor)
    expect(events.find((e) => e.result === 'credential_disabled')).toMatchObject({
      event_type: 'security_violation',
      details: { credential_id: s.victim, code: 'GH_VAULT_INSECURE_FILE', reason: expect.stringMatching(reason) },
    })
  })

  it('never changes the mode of a refused file (a failed read writes nothing)', async () => {
    const s = await seeded()
    fs.chmodSync(s.file, 0o644)
    const vault = open(s.dir, s.key)
    vault.reload()
    expect(modeOf(s.file)).toBe(0o644)
    expect(vault.get(s.victim)?.status).toBe('disabled')
  })

  it('disables a loaded credential whose file is chmod-ed at run time', async () => {
    const s = await seeded()
    const vault = open(s.dir, s.key)
    expect(vault.get(s.victim)?.status).toBe('active')
    fs.chmodSync(s.file, 0o644)
    vault.reload()
    expect(vault.get(s.victim)).toMatchObject({ status: 'disabled', error: { code: 'GH_VAULT_INSECURE_FILE' } })
    fs.chmodSync(s.file, 0o600)
    vault.reload()
    expect(vault.get(s.victim)?.status).toBe('active')
  })

  ;(isRoot ? it : it.skip)('refuses a file owned by another user', async () => {
    const s = await seeded()
    fs.chownSync(s.file, 65534, 65534)
    const vault = open(s.dir, s.key)
    expect(vault.get(s.victim)?.error?.message).toMatch(/owned by uid 65534/)
  })

  ;(isRoot ? it : it.skip)('refuses a directory owned by another user', () => {
    const dir = tmpDir()
    fs.chownSync(dir, 65534, 65534)
    expect(() => open(dir, newKey())).toThrow(expect.objectContaining({ code: 'GH_VAULT_INSECURE_DIR', message: expect.stringMatching(/owned by uid 65534/) }))
  })

  it('accepts insecure files with allowInsecurePermissions, reporting each once', async () => {
    const s = await seeded()
    fs.chmodSync(s.file, 0o644)
    const target = path.join(tmpDir(), 'linked.json')
    const survivorFile = path.join(s.dir, `${s.survivor}.json`)
    fs.renameSync(survivorFile, target)
    fs.symlinkSync(target, survivorFile)
    const { events, onEvent } = collectEvents()
    const vault = open(s.dir, s.key, { onEvent, allowInsecurePermissions: true })
    expect(vault.list().map((c) => c.status)).toEqual(['active', 'active'])
    vault.reload()
    vault.reload()
    const allowed = events.filter((e) => e.result === 'insecure_permissions_allowed')
    expect(allowed).toHaveLength(2)
    expect(allowed.map((e) => String(e.details?.reason)).sort()).toEqual([
      expect.stringMatching(/has mode 0644/),
      expect.stringMatching(/symlink/),
    ].sort())
    expect(allowed.every((e) => e.event_type === 'security_violation')).toBe(true)
  })

  it('reports an unreadable directory once and keeps the credentials it has', async () => {
    const parent = tmpDir()
    const dir = path.join(parent, 'auths')
    const { events, onEvent } = collectEvents()
    const vault = open(dir, newKey(), { onEvent })
    await vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    fs.renameSync(dir, path.join(parent, 'moved'))
    fs.symlinkSync(path.join(parent, 'moved'), dir)
    vault.reload()
    vault.reload()
    expect(events.filter((e) => e.result === 'vault_dir_unreadable')).toHaveLength(1)
    expect((await vault.acquire('openai'))?.provider).toBe('openai')
    expect(vault.status().readable).toBe(false)
  })
})
