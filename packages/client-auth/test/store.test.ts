import { mkdtempSync, statSync, chmodSync, writeFileSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { FileKeyStore, loadOrCreateSalt, MemoryKeyStore, isClientKeyFormat, generateClientKey } from '@gatehouse/client-auth'

const mode = (p: string) => statSync(p).mode & 0o777

describe('client keys', () => {
  it('generates gate_live_ + 43 base64url characters, never twice', () => {
    const keys = new Set(Array.from({ length: 1000 }, () => generateClientKey()))
    expect(keys.size).toBe(1000)
    for (const k of keys) expect(isClientKeyFormat(k)).toBe(true)
  })
})

describe('FileKeyStore', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'gh-keys-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

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

  it('sees keys created and revoked by another process (another store instance) on the next lookup', () => {
    const salt = randomBytes(32).toString('hex')
    const file = join(dir, 'client-keys.json')
    const server = new FileKeyStore({ file, salt })
    const cli = new FileKeyStore({ file, salt })
    const { key, record } = cli.create({ name: 'b' })
    expect(server.verify(key)?.id).toBe(record.id)
    cli.revoke(record.id)
    expect(server.verify(key)?.revoked_at).toBeDefined()
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
    const store = new FileKeyStore({ file, salt, logger })
    const { key } = store.create({ name: 'c' })
    chmodSync(file, 0o644)
    expect(store.verify(key)).toBeUndefined()
    expect(errors[0]).toContain('has mode 0644; must be 0600')
    expect(() => new FileKeyStore({ file, salt })).toThrow(expect.objectContaining({ code: 'GH_AUTH_KEYFILE_INSECURE' }))
    chmodSync(file, 0o600)
    expect(store.verify(key)).toBeDefined()
  })

  it('fails closed on a corrupt file', () => {
    const salt = randomBytes(32).toString('hex')
    const file = join(dir, 'client-keys.json')
    const store = new FileKeyStore({ file, salt })
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
