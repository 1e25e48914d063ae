import fs, { statSync, chmodSync, writeFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { FileKeyStore, loadOrCreateSalt, MemoryKeyStore, isClientKeyFormat, generateClientKey, hashClientKey, keyIdFromHash } from '@gatehouse/client-auth'
import { hasValidClientKeyChecksum } from '@gatehouse/core'
import { fakeClock, nextTurn, tempDir, tempDirs, type FakeClock } from '@gatehouse/testing'

const mode = (p: string) => statSync(p).mode & 0o777

describe('client keys', () => {
  it('generates gate_live_ + 43 base62 characters + _ + a 6-character checksum, never twice', () => {
    const keys = new Set(Array.from({ length: 1000 }, () => generateClientKey()))
    expect(keys.size).toBe(1000)
    for (const k of keys) {
      expect(k).toMatch(/^gate_live_[A-Za-z0-9]{43}_[A-Za-z0-9]{6}$/)
      expect(isClientKeyFormat(k)).toBe(true)
      expect(hasValidClientKeyChecksum(k)).toBe(true)
    }
  })

  it('still authenticates a key issued before checksums (gate_live_ + 43 base64url)', () => {
    const { dir, cleanup } = tempDir('keys')
    try {
      const salt = randomBytes(32).toString('hex')
      const legacy = `gate_live_${randomBytes(32).toString('base64url')}`
      expect(isClientKeyFormat(legacy)).toBe(true)
      const hash = hashClientKey(legacy, Buffer.from(salt, 'hex'))
      const file = join(dir, 'keys.json')
      // A key file as an older version wrote it: no integrity check yet, sealed on load.
      const record = { id: keyIdFromHash(hash), name: 'old', hash, created_at: new Date().toISOString() }
      writeFileSync(file, JSON.stringify({ version: 1, keys: [record] }), { mode: 0o600 })
      const store = new FileKeyStore({ file, salt, reload: 'stat' })
      expect(store.verify(legacy)?.id).toBe(record.id)
      const { key } = store.create({ name: 'new' })
      expect(hasValidClientKeyChecksum(key)).toBe(true)
      expect(store.verify(key)?.name).toBe('new')
      expect(store.verify(legacy)?.name).toBe('old')
      store.close()
    } finally {
      cleanup()
    }
  })
})

/** A fresh temporary directory per test, removed after it: `dir()` is the current one. */
function tempDirPerTest(): () => string {
  const tmp = tempDirs('keys')
  let dir = ''
  beforeEach(() => {
    dir = tmp.make()
  })
  afterEach(tmp.cleanup)
  return () => dir
}

describe('FileKeyStore: the file and its salt', () => {
  const tmp = tempDirPerTest()
  let dir: string
  beforeEach(() => {
    dir = tmp()
  })

  it('stores only salted hashes in a 0600 file in a 0700 dir', () => {
    const authDir = join(dir, 'auths')
    const salt = loadOrCreateSalt(authDir)
    expect(mode(authDir)).toBe(0o700)
    expect(mode(join(authDir, '.client-key-salt'))).toBe(0o600)
    expect(loadOrCreateSalt(authDir)).toBe(salt)
    const store = new FileKeyStore({ file: join(authDir, 'client-keys.json'), salt })
    const { key, record } = store.create({ name: 'a' })
    const text = readFileSync(store.file, 'utf8')
    expect(mode(store.file)).toBe(0o600)
    expect(text).not.toContain(key)
    expect(text).toContain(record.hash)
    expect(record.id).toMatch(/^key_[0-9a-f]{8}$/)
  })

  it('refuses a salt other than the one its keys were hashed under (GH_AUTH_SALT_CHANGED), naming neither salt', () => {
    const file = join(dir, 'client-keys.json')
    const [a, b] = [randomBytes(32).toString('hex'), randomBytes(32).toString('hex')]
    // An empty key file takes any salt.
    new FileKeyStore({ file, salt: b, reload: 'stat' }).close()
    const store = new FileKeyStore({ file, salt: a, reload: 'stat' })
    const { key } = store.create({ name: 'a' })
    store.close()
    let error: unknown
    try {
      new FileKeyStore({ file, salt: b, reload: 'stat' })
    } catch (e) {
      error = e
    }
    expect(error).toMatchObject({ code: 'GH_AUTH_SALT_CHANGED', message: expect.stringContaining('1 key(s) hashed under another salt') })
    for (const secret of [a, b, key]) expect(String((error as Error).message)).not.toContain(secret)
    expect(readFileSync(file, 'utf8')).not.toContain(a)
    // The right salt still opens it, and the key still authenticates.
    const again = new FileKeyStore({ file, salt: a, reload: 'stat' })
    expect(again.verify(key)).toBeDefined()
    again.close()
  })
})

describe('FileKeyStore: seeing changes made by other processes', () => {
  const tmp = tempDirPerTest()
  let dir: string
  let clock: FakeClock | undefined
  beforeEach(() => {
    dir = tmp()
  })
  afterEach(() => clock?.restore())

  it('sees keys created and revoked by another store instance once the change notification is in (reload: watch)', async () => {
    const salt = randomBytes(32).toString('hex')
    const file = join(dir, 'client-keys.json')
    const server = new FileKeyStore({ file, salt })
    const cli = new FileKeyStore({ file, salt, reload: 'stat' })
    try {
      const { key, record } = cli.create({ name: 'b' })
      await nextTurn()
      expect(server.verify(key)?.id).toBe(record.id)
      cli.revoke(record.id)
      await nextTurn()
      expect(server.verify(key)?.revoked_at).toBeDefined()
    } finally {
      server.close()
    }
  })

  it('sees another instance\'s changes on the very next lookup with reload: stat', () => {
    const salt = randomBytes(32).toString('hex')
    const file = join(dir, 'client-keys.json')
    const server = new FileKeyStore({ file, salt, reload: 'stat' })
    const cli = new FileKeyStore({ file, salt, reload: 'stat' })
    const { key, record } = cli.create({ name: 'b' })
    expect(server.verify(key)?.id).toBe(record.id)
    cli.revoke(record.id)
    expect(server.verify(key)?.revoked_at).toBeDefined()
  })

  it('does not check the file on every lookup when it is watched, and does with reload: stat', async () => {
    const salt = randomBytes(32).toString('hex')
    const file = join(dir, 'client-keys.json')
    const watched = new FileKeyStore({ file, salt })
    const stat = new FileKeyStore({ file, salt, reload: 'stat' })
    const { key } = stat.create({ name: 'e' })
    await nextTurn()
    watched.verify(key)
    const spy = jest.spyOn(fs, 'statSync')
    try {
      for (let i = 0; i < 100; i++) expect(watched.verify(key)).toBeDefined()
      const watchedStats = spy.mock.calls.filter(([p]) => p === file).length
      for (let i = 0; i < 100; i++) expect(stat.verify(key)).toBeDefined()
      const statStats = spy.mock.calls.filter(([p]) => p === file).length - watchedStats
      expect(watchedStats).toBeLessThanOrEqual(1)
      expect(statStats).toBeGreaterThanOrEqual(100)
    } finally {
      spy.mockRestore()
      watched.close()
    }
  })

  it('still checks a watched file once a second, should a notification be lost', async () => {
    clock = fakeClock({ timers: false }) // the backstop is a time check on lookups
    const salt = randomBytes(32).toString('hex')
    const file = join(dir, 'client-keys.json')
    const store = new FileKeyStore({ file, salt })
    const other = new FileKeyStore({ file, salt, reload: 'stat' })
    const { key, record } = other.create({ name: 'f' })
    await nextTurn()
    expect(store.verify(key)).toBeDefined()
    store.close() // no more notifications: only the backstop can see the revocation now
    ;(store as unknown as { watcher: object }).watcher = { close() {} }
    other.revoke(record.id)
    expect(store.verify(key)?.revoked_at).toBeUndefined()
    await clock.advance(1000)
    expect(store.verify(key)?.revoked_at).toBeDefined()
  })
})

describe('FileKeyStore: failing closed', () => {
  const tmp = tempDirPerTest()
  let dir: string
  beforeEach(() => {
    dir = tmp()
  })

  it('does not match a key under another salt', () => {
    const a = new MemoryKeyStore(randomBytes(32))
    const b = new MemoryKeyStore(randomBytes(32))
    const { key } = a.create({ name: 'x' })
    expect(b.verify(key)).toBeUndefined()
  })

  it('refuses an insecure key file at start and fails closed when one appears later', () => {
    const salt = randomBytes(32).toString('hex')
    const file = join(dir, 'client-keys.json')
    const errors: string[] = []
    const logger = { error: (m: string) => errors.push(m), warn() {}, info() {}, debug() {} }
    const store = new FileKeyStore({ file, salt, logger, reload: 'stat' })
    const { key } = store.create({ name: 'c' })
    chmodSync(file, 0o644)
    expect(store.verify(key)).toBeUndefined()
    expect(errors[0]).toContain('has mode 0644; must be 0600')
    expect(() => new FileKeyStore({ file, salt })).toThrow(expect.objectContaining({ code: 'GH_AUTH_KEYFILE_INSECURE' }))
    chmodSync(file, 0o600)
    expect(store.verify(key)).toBeDefined()
  })

  it('fails closed once notified that another process made the file insecure or corrupt (reload: watch)', async () => {
    const salt = randomBytes(32).toString('hex')
    const file = join(dir, 'client-keys.json')
    const store = new FileKeyStore({ file, salt, logger: { error() {}, warn() {}, info() {}, debug() {} } })
    try {
      const { key } = store.create({ name: 'g' })
      expect(store.verify(key)).toBeDefined()
      chmodSync(file, 0o644)
      await nextTurn()
      expect(store.verify(key)).toBeUndefined()
      chmodSync(file, 0o600)
      await nextTurn()
      expect(store.verify(key)).toBeDefined()
      const good = readFileSync(file, 'utf8')
      writeFileSync(file, '{"version":1,"keys":[{"id":1}]', { mode: 0o600 })
      await nextTurn()
      expect(store.verify(key)).toBeUndefined()
      writeFileSync(file, good, { mode: 0o600 })
      await nextTurn()
      expect(store.verify(key)).toBeDefined()
    } finally {
      store.close()
    }
  })

  it('fails closed on a corrupt file', () => {
    const salt = randomBytes(32).toString('hex')
    const file = join(dir, 'client-keys.json')
    const store = new FileKeyStore({ file, salt, reload: 'stat' })
    const { key } = store.create({ name: 'd' })
    writeFileSync(file, '{"version":1,"keys":[{"id":1}]', { mode: 0o600 })
    expect(store.verify(key)).toBeUndefined()
    expect(store.lastError).toContain('client-keys.json')
  })

  it('refuses a short salt without echoing it', () => {
    expect(() => new MemoryKeyStore('abc123')).toThrow(expect.objectContaining({ code: 'GH_AUTH_SALT_INVALID' }))
    try {
      new MemoryKeyStore('shortsecret')
    } catch (e) {
      expect((e as Error).message).not.toContain('shortsecret')
    }
  })

  it('revoking an unknown id is a 404 error', () => {
    const store = new MemoryKeyStore(randomBytes(32))
    expect(() => store.revoke('key_00000000')).toThrow(expect.objectContaining({ code: 'GH_AUTH_KEY_NOT_FOUND', statusCode: 404 }))
  })
})
