import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import { inspect } from 'node:util'
import { isGatehouseError } from '@gatehouse/core'
import {
  createCredentialVault,
  credentialInjection,
  keyIdOf,
  parseEncryptionKey,
  type CredentialInjectionOptions,
  type CredentialVaultOptions,
} from '@gatehouse/credential-vault'
import { cleanupDirs, modeOf, newKey, tmpDir } from './helpers'

afterAll(cleanupDirs)

function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn()
  } catch (err) {
    expect(isGatehouseError(err)).toBe(true)
    return err as Error & { code?: string }
  }
  throw new Error('expected a throw')
}

describe('encryption key parsing', () => {
  const bytes = randomBytes(32)

  it.each<[string, string | Buffer]>([
    ['64 hex characters', bytes.toString('hex')],
    ['64 upper-case hex characters', bytes.toString('hex').toUpperCase()],
    ['base64 with padding', bytes.toString('base64')],
    ['base64url without padding (secrets.token_urlsafe(32))', bytes.toString('base64url')],
    ['base64 with a trailing newline (an .env file)', `${bytes.toString('base64')}\n`],
    ['a Buffer of 32 bytes', bytes],
  ])('accepts %s', (_name, input) => {
    expect(parseEncryptionKey(input).equals(bytes)).toBe(true)
  })

  it('accepts 32 raw characters, as the seed config does', () => {
    const raw = 'abcdefghijklmnopqrstuvwxyz012345'
    expect(parseEncryptionKey(raw).equals(Buffer.from(raw))).toBe(true)
  })

  it.each<[string, unknown]>([
    ['31 raw bytes', 'abcdefghijklmnopqrstuvwxyz01234'],
    ['33 raw bytes', 'abcdefghijklmnopqrstuvwxyz0123456'],
    ['62 hex characters', randomBytes(31).toString('hex')],
    ['base64 of 20 bytes', randomBytes(20).toString('base64')],
    ['an empty string (an unset ${GATEHOUSE_ENCRYPTION_KEY})', ''],
    ['a number', 12345],
    ['a 16-byte Buffer', randomBytes(16)],
  ])('refuses %s with "must be 32 bytes", never echoing it', (_name, input) => {
    const err = thrown(() => parseEncryptionKey(input))
    expect(err.code).toBe('GH_VAULT_INVALID_KEY')
    expect(err.message).toContain('encryption.key must be 32 bytes')
    expect(err.message).toMatch(/^@gatehouse\/credential-vault: /)
    if (typeof input === 'string' && input.length > 0) expect(err.message).not.toContain(input)
  })

  it('derives a key id that does not reveal the key', () => {
    const kid = keyIdOf(bytes)
    expect(kid).toMatch(/^k[0-9a-f]{16}$/)
    expect(bytes.toString('hex')).not.toContain(kid.slice(1))
  })
})

describe('createCredentialVault options', () => {
  const base = (): CredentialVaultOptions => ({ dir: tmpDir(), encryption: { key: newKey() }, watch: false, rescanInterval: 0 })

  it.each<[string, (o: CredentialVaultOptions) => unknown, string, string]>([
    ['a misspelled option', (o) => ({ ...o, rescanIntervall: '10s' }), 'GH_VAULT_UNKNOWN_OPTION', 'rescanIntervall: unknown key (did you mean "rescanInterval"?)'],
    ['a missing dir', ({ dir: _d, ...o }) => o, 'GH_VAULT_INVALID_OPTIONS', 'dir: is required'],
    ['a bad duration', (o) => ({ ...o, refreshTimeout: '30 seconds' }), 'GH_VAULT_INVALID_OPTIONS', 'refreshTimeout'],
    ['a negative duration', (o) => ({ ...o, unhealthyCooldown: -5 }), 'GH_VAULT_INVALID_OPTIONS', 'unhealthyCooldown'],
    ['a non-boolean watch', (o) => ({ ...o, watch: 'yes' }), 'GH_VAULT_INVALID_OPTIONS', 'watch: must be boolean (got "yes")'],
    ['an unknown encryption key name', (o) => ({ ...o, encryption: { key: newKey(), keys: [] } }), 'GH_VAULT_UNKNOWN_OPTION', 'encryption.keys: unknown key'],
    ['encryption without a key', (o) => ({ ...o, encryption: { enabled: true } }), 'GH_VAULT_KEY_MISSING', 'encryption.key is required'],
    ['encryption by default without a key', (o) => ({ dir: o.dir }), 'GH_VAULT_KEY_MISSING', 'encryption.key is required'],
    ['a short key', (o) => ({ ...o, encryption: { key: 'too-short-key' } }), 'GH_VAULT_INVALID_KEY', 'encryption.key must be 32 bytes'],
    ['a bad previous key', (o) => ({ ...o, encryption: { key: newKey(), previousKeys: [newKey(), 'nope'] } }), 'GH_VAULT_INVALID_KEY', 'encryption.previousKeys[1] must be 32 bytes'],
    ['a static credential for an unknown provider', (o) => ({ ...o, staticCredentials: { azure: 'x'.repeat(20) } }), 'GH_VAULT_UNKNOWN_OPTION', 'staticCredentials: unknown provider "azure"'],
    ['a static credential with a newline', (o) => ({ ...o, staticCredentials: { openai: 'sk-abc\r\nX-Evil: 1' } }), 'GH_VAULT_INVALID_OPTIONS', 'staticCredentials.openai: must be 1-8192 visible ASCII'],
    ['a non-function onEvent', (o) => ({ ...o, onEvent: 'log' }), 'GH_VAULT_INVALID_OPTIONS', 'onEvent: must be a function'],
    ['a logger without methods', (o) => ({ ...o, logger: {} }), 'GH_VAULT_INVALID_OPTIONS', 'logger: must have error, warn, info and debug'],
  ])('rejects %s', (_name, mutate, code, message) => {
    const err = thrown(() => createCredentialVault(mutate(base()) as CredentialVaultOptions))
    expect(err.code).toBe(code)
    expect(err.message).toContain(message)
    expect(err.message).toMatch(/^@gatehouse\/credential-vault: /)
  })

  it('never echoes a bad key or a bad static credential', () => {
    const badKey = `secret-${randomBytes(20).toString('hex')}`
    const err1 = thrown(() => createCredentialVault({ ...base(), encryption: { key: badKey } }))
    expect(err1.message).not.toContain(badKey)
    expect(err1.message).not.toContain(badKey.slice(7, 20))
    const badStatic = `sk-proj-${randomBytes(20).toString('hex')}\n`
    const err2 = thrown(() => createCredentialVault({ ...base(), staticCredentials: { openai: badStatic } }))
    expect(err2.message).not.toContain(badStatic.trim())
  })

  it('detects the factory passed to app.use() uncalled', () => {
    const err = thrown(() => credentialInjection({ headers: {}, method: 'GET', url: '/' } as unknown as CredentialInjectionOptions))
    expect(err.code).toBe('GH_VAULT_NOT_CALLED')
  })

  it('treats undefined as absent, never mutates the options, and freezes its config', async () => {
    const options = { ...base(), allowInsecurePermissions: undefined, encryption: { key: newKey(), previousKeys: undefined } }
    const before = JSON.stringify(options)
    const vault = createCredentialVault(options as unknown as CredentialVaultOptions)
    expect(JSON.stringify(options)).toBe(before)
    expect(Object.isFrozen(vault.config)).toBe(true)
    expect(vault.config.allowInsecurePermissions).toBe(false)
    expect(vault.config.refreshTimeoutMs).toBe(30_000)
    expect(vault.config.unhealthyCooldownMs).toBe(60_000)
    expect(JSON.stringify(vault.config)).not.toContain(options.encryption.key)
    await vault.shutdown()
  })

  it('never shows a key or a static credential when the vault or its config is printed', async () => {
    const key = newKey()
    const staticKey = `sk-proj-${randomBytes(24).toString('hex')}`
    const vault = createCredentialVault({ ...base(), encryption: { key }, staticCredentials: { openai: staticKey } })
    const token = `sk-ant-api03-${randomBytes(24).toString('hex')}`
    await vault.add({ provider: 'claude', type: 'api_key', token })
    const printed = [inspect(vault, { depth: 10 }), JSON.stringify(vault), inspect(vault.config, { depth: 10 }), JSON.stringify(vault.config)].join('\n')
    for (const secret of [key, staticKey, token, Buffer.from(key, 'base64').toString('hex')]) expect(printed).not.toContain(secret)
    expect(vault.config.staticCredentials.openai).toBe(staticKey)
    await vault.shutdown()
  })

  it('creates a missing directory with mode 0700 and tightens a loose one', async () => {
    const parent = tmpDir()
    const dir = `${parent}/auths`
    const v1 = createCredentialVault({ dir, encryption: { key: newKey() }, watch: false, rescanInterval: 0 })
    expect(modeOf(dir)).toBe(0o700)
    await v1.shutdown()
    fs.chmodSync(dir, 0o755)
    const v2 = createCredentialVault({ dir, encryption: { key: newKey() }, watch: false, rescanInterval: 0 })
    expect(modeOf(dir)).toBe(0o700)
    await v2.shutdown()
  })

  it('refuses a directory that is a symlink, naming the reason', () => {
    const real = tmpDir()
    const link = `${tmpDir()}/auths-link`
    fs.symlinkSync(real, link)
    const err = thrown(() => createCredentialVault({ dir: link, encryption: { key: newKey() }, watch: false }))
    expect(err.code).toBe('GH_VAULT_INSECURE_DIR')
    expect(err.message).toContain('symlink')
  })

  it('refuses a directory path that is a file', () => {
    const file = `${tmpDir()}/file`
    fs.writeFileSync(file, 'x')
    const err = thrown(() => createCredentialVault({ dir: file, encryption: { key: newKey() }, watch: false }))
    expect(err.code).toBe('GH_VAULT_INSECURE_DIR')
  })
})

describe('credentialInjection options', () => {
  it.each<[string, unknown, string, string]>([
    ['no vault', {}, 'GH_VAULT_INVALID_OPTIONS', 'vault: is required'],
    ['a vault that is not one', { vault: { acquire: 1 } }, 'GH_VAULT_INVALID_OPTIONS', 'vault: must be a CredentialVault'],
    ['a misspelled option', { vault: undefined, stripHeader: ['x'] }, 'GH_VAULT_UNKNOWN_OPTION', 'did you mean "stripHeaders"?'],
    ['a bad header name', { stripHeaders: ['bad header'] }, 'GH_VAULT_INVALID_OPTIONS', 'stripHeaders[0]'],
  ])('rejects %s', async (_name, options, code, message) => {
    const vault = createCredentialVault({ dir: tmpDir(), encryption: { key: newKey() }, watch: false, rescanInterval: 0 })
    const opts = { vault, ...(options as object) } as CredentialInjectionOptions
    if (_name === 'no vault') delete (opts as { vault?: unknown }).vault
    const err = thrown(() => credentialInjection(opts))
    expect(err.code).toBe(code)
    expect(err.message).toContain(message)
    await vault.shutdown()
  })
})
