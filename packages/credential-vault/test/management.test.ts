import * as fs from 'node:fs'
import * as path from 'node:path'
import { isGatehouseError } from '@gatehouse/core'
import { collectEvents } from '@gatehouse/testing'
import { createCredentialVault, type CredentialVault } from '@gatehouse/credential-vault'
import {
  anthropicKey,
  cleanupDirs,
  expectNoSecrets,
  geminiKey,
  newKey,
  oauthToken,
  openaiKey,
  recordingLogger,
  refreshToken,
  tmpDir,
} from './helpers'

const vaults: CredentialVault[] = []
afterEach(async () => {
  await Promise.all(vaults.splice(0).map((v) => v.shutdown()))
})
afterAll(cleanupDirs)

function setup(extra: Partial<Parameters<typeof createCredentialVault>[0]> = {}) {
  const dir = tmpDir()
  const { events, onEvent } = collectEvents()
  const logger = recordingLogger()
  const vault = createCredentialVault({ dir, encryption: { key: newKey() }, watch: false, rescanInterval: 0, onEvent, logger, ...extra })
  vaults.push(vault)
  return { dir, vault, events, logger }
}

async function rejection(p: Promise<unknown>): Promise<Error & { code: string; statusCode: number }> {
  try {
    await p
  } catch (err) {
    expect(isGatehouseError(err)).toBe(true)
    return err as Error & { code: string; statusCode: number }
  }
  throw new Error('expected a rejection')
}

describe('add and list', () => {
  it('adds API keys and OAuth tokens, lists them masked, and emits config_change without secrets', async () => {
    const { vault, events, logger } = setup({ staticCredentials: { gemini: geminiKey() } })
    const ak = anthropicKey()
    const access = oauthToken()
    const refresh = refreshToken()
    const a = await vault.add({ provider: 'claude', type: 'api_key', token: ak, label: 'team a' }, { ip: '127.0.0.1', user_id: 'mgmt' })
    const o = await vault.add({
      provider: 'claude',
      type: 'oauth',
      oauth: { access_token: access, refresh_token: refresh, expires_at: '2030-01-01T00:00:00Z', token_url: 'https://console.anthropic.com/v1/oauth/token' },
    })
    const list = vault.list()
    expect(list).toHaveLength(3)
    expect(list.find((c) => c.id === a.id)).toMatchObject({
      provider: 'claude',
      type: 'api_key',
      label: 'team a',
      source: 'vault',
      status: 'active',
      encrypted: true,
      token: 'sk-ant-****',
    })
    expect(list.find((c) => c.id === o.id)).toMatchObject({
      type: 'oauth',
      oauth: { access_token: 'sk-ant-****', refresh_token: 'sk-ant-****', expires_at: '2030-01-01T00:00:00.000Z' },
    })
    expect(list.find((c) => c.source === 'static')).toMatchObject({ id: 'static_gemini', provider: 'gemini', token: 'AIza****' })
    const added = events.filter((e) => e.result === 'credential_added')
    expect(added).toHaveLength(2)
    expect(added[0]).toMatchObject({ event_type: 'config_change', ip: '127.0.0.1', user_id: 'mgmt', provider: 'claude', details: { credential_id: a.id } })
    expectNoSecrets([list, events, logger.lines], [ak, access, refresh])
  })

  it.each<[string, unknown, string, string]>([
    ['a non-object', 'sk-ant-xyz', 'GH_VAULT_INVALID_CREDENTIAL', 'must be a JSON object'],
    ['an unknown provider', { provider: 'azure', type: 'api_key', token: 'x' }, 'GH_VAULT_INVALID_CREDENTIAL', 'provider: must be one of "claude", "openai", "gemini"'],
    ['a path-traversal provider', { provider: '../../etc', type: 'api_key', token: 'x' }, 'GH_VAULT_INVALID_CREDENTIAL', 'provider: must be one of'],
    ['an unknown type', { provider: 'openai', type: 'password', token: 'x' }, 'GH_VAULT_INVALID_CREDENTIAL', 'type: must be one of "api_key", "oauth"'],
    ['an api_key without token', { provider: 'openai', type: 'api_key' }, 'GH_VAULT_INVALID_CREDENTIAL', 'token: is required'],
    ['a token with CRLF (header injection)', { provider: 'openai', type: 'api_key', token: 'sk-a\r\nX-Evil: 1' }, 'GH_VAULT_INVALID_CREDENTIAL', 'token: must be 1-8192 visible ASCII'],
    ['a client-chosen id', { provider: 'openai', type: 'api_key', token: 'sk-abc', id: '../../x' }, 'GH_VAULT_INVALID_CREDENTIAL', '"id": unknown field'],
    ['oauth without access_token', { provider: 'claude', type: 'oauth', oauth: {} }, 'GH_VAULT_INVALID_CREDENTIAL', 'oauth.access_token: is required'],
    ['oauth with a plain-http token_url', { provider: 'claude', type: 'oauth', oauth: { access_token: 'a1', refresh_token: 'r1', token_url: 'http://auth.example.com/token' } }, 'GH_VAULT_INSECURE_TOKEN_URL', 'oauth.token_url: must be an https URL'],
    ['oauth with credentials in the token_url', { provider: 'claude', type: 'oauth', oauth: { access_token: 'a1', refresh_token: 'r1', token_url: 'https://u:p@auth.example.com/' } }, 'GH_VAULT_INSECURE_TOKEN_URL', 'without credentials'],
    ['a refresh_token without token_url', { provider: 'claude', type: 'oauth', oauth: { access_token: 'a1', refresh_token: 'r1' } }, 'GH_VAULT_INVALID_CREDENTIAL', 'refresh_token and token_url go together'],
    ['a bad expires_at', { provider: 'claude', type: 'oauth', oauth: { access_token: 'a1', expires_at: 'soon' } }, 'GH_VAULT_INVALID_CREDENTIAL', 'oauth.expires_at'],
    ['a label with a newline', { provider: 'openai', type: 'api_key', token: 'sk-1', label: 'a\nb' }, 'GH_VAULT_INVALID_CREDENTIAL', 'label: must be 1-128 characters'],
  ])('refuses %s with 400, naming the field', async (_name, input, code, message) => {
    const { vault, dir } = setup()
    const err = await rejection(vault.add(input))
    expect(err).toMatchObject({ code, statusCode: 400 })
    expect(err.message).toContain(message)
    expect(fs.readdirSync(dir)).toEqual([])
  })

  it('never echoes a token in a validation error', async () => {
    const { vault } = setup()
    const token = `${openaiKey()}\n`
    const errors = await Promise.all([
      rejection(vault.add({ provider: 'openai', type: 'api_key', token })),
      rejection(vault.add({ provider: 'openai', type: 'oauth', token })),
      rejection(vault.add({ provider: token, type: 'api_key', token })),
      rejection(vault.add({ provider: 'openai', type: 'api_key', token: 'ok-token', [token.trim()]: 1 })),
    ])
    expectNoSecrets(errors.map((e) => e.message), [token.trim()])
  })
})

describe('update', () => {
  it('replaces a secret in place and validates the merged OAuth fields', async () => {
    const { vault, events } = setup()
    const { id } = await vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    const next = openaiKey()
    await vault.update(id, { token: next })
    expect((await vault.acquire('openai'))?.headers.authorization).toBe(`Bearer ${next}`)
    expect(events.find((e) => e.result === 'credential_updated')?.details).toEqual({ action: 'credential_updated', credential_id: id, fields: ['token'] })
    expect((await rejection(vault.update(id, { oauth: { access_token: 'x1' } }))).code).toBe('GH_VAULT_INVALID_CREDENTIAL')
    const o = await vault.add({ provider: 'claude', type: 'oauth', oauth: { access_token: oauthToken() } })
    expect((await rejection(vault.update(o.id, { oauth: { refresh_token: refreshToken() } }))).message).toContain('go together')
    await vault.update(o.id, { oauth: { refresh_token: refreshToken(), token_url: 'https://auth.example.com/token' } })
    expect(vault.get(o.id)?.oauth?.refresh_token).toBe('sk-ant-****')
    expect((await rejection(vault.update('cred_000000000000000000000000', { label: 'x' }))).statusCode).toBe(404)
  })
})

describe('revoke and delete', () => {
  it('revokes every credential of a provider, files deleted, nothing served afterwards', async () => {
    const { vault, dir, events } = setup()
    const a = await vault.add({ provider: 'claude', type: 'api_key', token: anthropicKey() })
    const b = await vault.add({ provider: 'claude', type: 'api_key', token: anthropicKey() })
    const c = await vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    const { revoked } = await vault.revoke('claude', undefined, { request_id: 'r1' })
    expect(revoked.sort()).toEqual([a.id, b.id].sort())
    expect(fs.readdirSync(dir)).toEqual([`${c.id}.json`])
    expect(await vault.acquire('claude')).toBeUndefined()
    expect(events.filter((e) => e.result === 'credential_revoked')).toHaveLength(2)
    expect(events.find((e) => e.result === 'credential_revoked')).toMatchObject({ event_type: 'config_change', request_id: 'r1', provider: 'claude' })
    expect((await rejection(vault.revoke('claude'))).statusCode).toBe(404)
  })

  it('revokes one id, only under its own provider', async () => {
    const { vault, dir } = setup()
    const a = await vault.add({ provider: 'claude', type: 'api_key', token: anthropicKey() })
    const b = await vault.add({ provider: 'claude', type: 'api_key', token: anthropicKey() })
    expect((await rejection(vault.revoke('openai', a.id))).code).toBe('GH_VAULT_NOT_FOUND')
    await vault.revoke('claude', a.id)
    expect(fs.readdirSync(dir)).toEqual([`${b.id}.json`])
    expect(vault.list().map((s) => s.id)).toEqual([b.id])
  })

  it('erases a disabled (undecryptable) credential by id', async () => {
    const { vault, dir } = setup()
    const { id } = await vault.add({ provider: 'claude', type: 'api_key', token: anthropicKey() })
    fs.writeFileSync(path.join(dir, `${id}.json`), '{"v":1,"garbage":true}')
    vault.reload()
    expect(vault.get(id)?.status).toBe('disabled')
    expect(await vault.delete(id)).toEqual({ revoked: [id] })
    expect(fs.readdirSync(dir)).toEqual([])
    expect(vault.list()).toEqual([])
  })

  it.each<[string, string, string | undefined]>([
    ['a traversal id', 'claude', '../../../../etc/passwd'],
    ['an absolute path id', 'claude', '/etc/passwd'],
    ['an id with a NUL byte', 'claude', 'cred_0\u0000'],
    ['an id naming a sibling file', 'claude', '../sibling'],
    ['a traversal provider', '../..', undefined],
    ['a provider with a slash', 'claude/../../x', 'cred_000000000000000000000000'],
    ['an id that only looks right with a suffix', 'claude', 'cred_000000000000000000000000.json/../../sibling'],
  ])('refuses %s with 404 and touches no file', async (_name, provider, id) => {
    const { vault, dir } = setup()
    const parent = path.dirname(dir)
    const sibling = path.join(parent, `sibling-${path.basename(dir)}`)
    fs.writeFileSync(sibling, 'keep me')
    fs.writeFileSync(path.join(dir, 'sibling'), 'keep me too', { mode: 0o600 })
    await vault.add({ provider: 'claude', type: 'api_key', token: anthropicKey() })
    const before = fs.readdirSync(dir).sort()
    const err = await rejection(vault.revoke(provider, id))
    expect(err).toMatchObject({ code: 'GH_VAULT_NOT_FOUND', statusCode: 404 })
    if (id !== undefined) expect((await rejection(vault.delete(id))).statusCode).toBe(404)
    expect(fs.readdirSync(dir).sort()).toEqual(before)
    expect(fs.readFileSync(sibling, 'utf8')).toBe('keep me')
    expect(await vault.acquire('claude')).toBeDefined()
    fs.rmSync(sibling)
  })

  it('ignores files whose names the vault did not make', async () => {
    const { vault, dir } = setup()
    fs.writeFileSync(path.join(dir, 'keys.json'), JSON.stringify({ provider: 'claude', type: 'api_key', token: anthropicKey() }), { mode: 0o600 })
    fs.writeFileSync(path.join(dir, 'cred_../x.json'.replace('/', '_')), '{}', { mode: 0o600 })
    vault.reload()
    expect(vault.list()).toEqual([])
  })
})

describe('export', () => {
  it('exports masked by default and re-importable with secrets, auditing both', async () => {
    const { vault, events, logger } = setup()
    const ak = anthropicKey()
    const access = oauthToken()
    const refresh = refreshToken()
    await vault.add({ provider: 'claude', type: 'api_key', token: ak, label: 'k' })
    await vault.add({ provider: 'claude', type: 'oauth', oauth: { access_token: access, refresh_token: refresh, token_url: 'https://auth.example.com/t', expires_at: 1_900_000_000 } })
    const masked = vault.export()
    expect(masked).toMatchObject({ version: 1, include_secrets: false })
    expect(masked.credentials).toHaveLength(2)
    expectNoSecrets(masked, [ak, access, refresh])
    expect(masked.credentials.find((c) => c.type === 'oauth')?.oauth?.expires_at).toBe(1_900_000_000_000)

    const full = vault.export({ includeSecrets: true }, { user_id: 'admin', ip: '127.0.0.1' })
    expect(JSON.stringify(full)).toContain(ak)
    expect(full.credentials.find((c) => c.type === 'oauth')?.oauth).toMatchObject({ access_token: access, refresh_token: refresh })
    const exportEvents = events.filter((e) => e.details?.action === 'export')
    expect(exportEvents).toEqual([
      expect.objectContaining({ event_type: 'credential_access', result: 'exported', details: { action: 'export', include_secrets: false, count: 2 } }),
      expect.objectContaining({ event_type: 'credential_access', result: 'exported_with_secrets', user_id: 'admin', details: { action: 'export', include_secrets: true, count: 2 } }),
    ])
    expectNoSecrets([events, logger.lines], [ak, access, refresh])

    // Data portability: the export goes into another vault as is.
    const other = setup()
    for (const c of full.credentials) {
      const { id: _id, created_at: _c, updated_at: _u, ...input } = c
      await other.vault.add(input)
    }
    expect((await other.vault.acquire('claude'))?.provider).toBe('claude')
    expect(other.vault.list().map((c) => c.type).sort()).toEqual(['api_key', 'oauth'])
  })
})

describe('status', () => {
  it('reports readability, key ids and counts for /readyz and doctor', async () => {
    const { vault, dir } = setup()
    await vault.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    fs.writeFileSync(path.join(dir, 'cred_aaaaaaaaaaaaaaaaaaaaaaaa.json'), 'nope', { mode: 0o600 })
    vault.reload()
    const status = vault.status()
    expect(status).toMatchObject({
      readable: true,
      encryption: { enabled: true, current_key_id: expect.stringMatching(/^k[0-9a-f]{16}$/) },
      credentials: { total: 2, active: 1, unhealthy: 0, disabled: 1 },
      errors: [{ file: 'cred_aaaaaaaaaaaaaaaaaaaaaaaa.json', code: 'GH_VAULT_INVALID_FILE' }],
    })
    await vault.shutdown()
    expect(vault.status().readable).toBe(false)
    expect((await rejection(vault.add({ provider: 'openai', type: 'api_key', token: 'sk-1' }))).code).toBe('GH_VAULT_SHUT_DOWN')
    expect(await vault.acquire('openai')).toBeUndefined()
  })
})
