import { randomBytes } from 'node:crypto'
import { ANTHROPIC_OAUTH_BETA, GatehouseError, PROVIDER_NAMES, isLoopback, isProviderName, maskSecrets, upstreamCredentialHeaders, type ProviderName } from '@gatehouse/core'
import { CredentialVaultErrorCodes } from './errors'

/** An API key, or an OAuth access token with what is needed to refresh it. */
export type CredentialType = 'api_key' | 'oauth'

export interface OAuthTokens {
  access_token: string
  refresh_token?: string
  /** Epoch milliseconds. */
  expires_at?: number
  token_url?: string
  client_id?: string
  scope?: string
}

/** What a vault file holds once decrypted. */
export interface CredentialRecord {
  v: 1
  id: string
  provider: ProviderName
  type: CredentialType
  label?: string
  created_at: string
  updated_at: string
  token?: string
  oauth?: OAuthTokens
}

/** The body of `POST /v0/management/auths` (SPEC §3), and what `vault.add()` takes. */
export interface CredentialInput {
  provider: ProviderName | string
  type: CredentialType
  /** The API key (type api_key). */
  token?: string
  /** The OAuth tokens (type oauth). `expires_at`: epoch ms, epoch seconds or an ISO date. */
  oauth?: {
    access_token: string
    refresh_token?: string
    expires_at?: number | string
    token_url?: string
    client_id?: string
    scope?: string
  }
  label?: string
}

/** What `vault.update()` takes: any of the secret-bearing fields, or the label. */
export type CredentialPatch = Partial<Pick<CredentialInput, 'token' | 'oauth' | 'label'>>

export const ID_PATTERN = /^cred_[0-9a-f]{24}$/
export const FILE_PATTERN = /^cred_[0-9a-f]{24}\.json$/
export const newCredentialId = (): string => `cred_${randomBytes(12).toString('hex')}`
export const fileNameOf = (id: string): string => `${id}.json`

const TOKEN = /^[\x21-\x7e]{1,8192}$/
const CLIENT_ID = /^[\x21-\x7e]{1,512}$/
const SCOPE = /^[\x20-\x7e]{0,1024}$/

function invalid(message: string, code: keyof typeof CredentialVaultErrorCodes = 'GH_VAULT_INVALID_CREDENTIAL'): GatehouseError {
  return new GatehouseError(CredentialVaultErrorCodes[code], `@gatehouse/credential-vault: ${message}`, 400)
}

/** A field name from user input, safe to quote: masked and cut short. */
const fieldName = (name: string): string => JSON.stringify(maskSecrets(name).slice(0, 40))

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

/** `expires_at` as epoch ms: numbers under 1e11 are taken as seconds; ISO dates are parsed. */
export function normalizeExpiresAt(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined
  let n: number
  if (typeof value === 'number') n = value
  else if (typeof value === 'string' && /^\d+(\.\d+)?$/.test(value)) n = Number(value)
  else if (typeof value === 'string') n = Date.parse(value)
  else return NaN
  if (!Number.isFinite(n) || n <= 0) return NaN
  return Math.round(n < 1e11 ? n * 1000 : n)
}

/**
 * A token endpoint must be https; plain http is accepted to a loopback address only (a local
 * token service, tests). Anything else would send a refresh token in clear text.
 */
export function checkTokenUrl(value: string): boolean {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return false
  }
  if (url.username || url.password) return false
  if (url.protocol === 'https:') return true
  if (url.protocol !== 'http:') return false
  return url.hostname === 'localhost' || isLoopback(url.hostname)
}

function checkOAuth(raw: unknown, where: string, requireAccess: boolean): OAuthTokens {
  if (!isPlainObject(raw)) throw invalid(`${where}: must be an object`)
  const allowed = ['access_token', 'refresh_token', 'expires_at', 'token_url', 'client_id', 'scope']
  for (const k of Object.keys(raw)) if (!allowed.includes(k)) throw invalid(`${where}.${k === '' ? '""' : fieldName(k)}: unknown field`)
  const out: OAuthTokens = { access_token: '' }
  if (raw.access_token === undefined) {
    if (requireAccess) throw invalid(`${where}.access_token: is required`)
  } else if (typeof raw.access_token !== 'string' || !TOKEN.test(raw.access_token)) {
    throw invalid(`${where}.access_token: must be 1-8192 visible ASCII characters (the value is not shown)`)
  } else out.access_token = raw.access_token
  if (raw.refresh_token !== undefined) {
    if (typeof raw.refresh_token !== 'string' || !TOKEN.test(raw.refresh_token)) {
      throw invalid(`${where}.refresh_token: must be 1-8192 visible ASCII characters (the value is not shown)`)
    }
    out.refresh_token = raw.refresh_token
  }
  if (raw.expires_at !== undefined) {
    const at = normalizeExpiresAt(raw.expires_at)
    if (at === undefined || Number.isNaN(at)) throw invalid(`${where}.expires_at: must be epoch milliseconds, epoch seconds or an ISO date`)
    out.expires_at = at
  }
  if (raw.token_url !== undefined) {
    if (typeof raw.token_url !== 'string' || raw.token_url.length > 2048 || !checkTokenUrl(raw.token_url)) {
      throw invalid(`${where}.token_url: must be an https URL without credentials (http is allowed to loopback only)`, 'GH_VAULT_INSECURE_TOKEN_URL')
    }
    out.token_url = raw.token_url
  }
  if (raw.client_id !== undefined) {
    if (typeof raw.client_id !== 'string' || !CLIENT_ID.test(raw.client_id)) throw invalid(`${where}.client_id: must be 1-512 visible ASCII characters`)
    out.client_id = raw.client_id
  }
  if (raw.scope !== undefined) {
    if (typeof raw.scope !== 'string' || !SCOPE.test(raw.scope)) throw invalid(`${where}.scope: must be printable ASCII, at most 1024 characters`)
    out.scope = raw.scope
  }
  if ((out.refresh_token === undefined) !== (out.token_url === undefined)) {
    throw invalid(`${where}: refresh_token and token_url go together (both, to refresh; or neither)`)
  }
  return out
}

function checkLabel(raw: unknown): string {
  const hasControl = (v: string): boolean => [...v].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)
  if (typeof raw !== 'string' || raw.length < 1 || raw.length > 128 || hasControl(raw)) throw invalid('label: must be 1-128 characters without control characters')
  return raw
}

/**
 * Validate a credential to add (the management API body). Throws GH_VAULT_INVALID_CREDENTIAL or
 * GH_VAULT_INSECURE_TOKEN_URL (HTTP 400) naming the field; a value is never quoted.
 */
export function validateCredentialInput(input: unknown): Omit<CredentialRecord, 'v' | 'id' | 'created_at' | 'updated_at'> {
  if (!isPlainObject(input)) throw invalid('the credential must be a JSON object')
  const allowed = ['provider', 'type', 'token', 'oauth', 'label']
  for (const k of Object.keys(input)) if (!allowed.includes(k)) throw invalid(`${fieldName(k)}: unknown field`)
  if (!isProviderName(input.provider)) {
    throw invalid(`provider: must be one of ${PROVIDER_NAMES.map((p) => JSON.stringify(p)).join(', ')}`)
  }
  const provider = input.provider
  if (input.type !== 'api_key' && input.type !== 'oauth') throw invalid('type: must be one of "api_key", "oauth"')
  const out: Omit<CredentialRecord, 'v' | 'id' | 'created_at' | 'updated_at'> = { provider, type: input.type }
  if (input.type === 'api_key') {
    if (input.oauth !== undefined) throw invalid('oauth: not allowed with type "api_key"')
    if (input.token === undefined) throw invalid('token: is required with type "api_key"')
    if (typeof input.token !== 'string' || !TOKEN.test(input.token)) {
      throw invalid('token: must be 1-8192 visible ASCII characters (the value is not shown)')
    }
    out.token = input.token
  } else {
    if (input.token !== undefined) throw invalid('token: not allowed with type "oauth" (use oauth.access_token)')
    if (input.oauth === undefined) throw invalid('oauth: is required with type "oauth"')
    out.oauth = checkOAuth(input.oauth, 'oauth', true)
  }
  if (input.label !== undefined) out.label = checkLabel(input.label)
  return out
}

/**
 * Apply an update to a credential's body and validate the result: `token` for an API key,
 * `oauth` fields (merged over the current ones) for an OAuth credential, `label` for both.
 */
export function applyCredentialPatch(current: CredentialRecord, patch: unknown): CredentialRecord {
  if (!isPlainObject(patch)) throw invalid('the update must be a JSON object')
  const allowed = ['token', 'oauth', 'label']
  for (const k of Object.keys(patch)) if (!allowed.includes(k)) throw invalid(`${fieldName(k)}: unknown field`)
  const next: CredentialRecord = { ...current }
  if (patch.token !== undefined) {
    if (current.type !== 'api_key') throw invalid('token: not allowed with type "oauth" (use oauth.access_token)')
    if (typeof patch.token !== 'string' || !TOKEN.test(patch.token)) {
      throw invalid('token: must be 1-8192 visible ASCII characters (the value is not shown)')
    }
    next.token = patch.token
  }
  if (patch.oauth !== undefined) {
    if (current.type !== 'oauth') throw invalid('oauth: not allowed with type "api_key"')
    if (!isPlainObject(patch.oauth)) throw invalid('oauth: must be an object')
    next.oauth = checkOAuth({ ...current.oauth, ...patch.oauth }, 'oauth', true)
  }
  if (patch.label !== undefined) next.label = checkLabel(patch.label)
  return next
}

/**
 * Parse a decrypted (or plaintext) vault record; `expectedId` comes from the file name. Throws
 * GH_VAULT_INVALID_FILE naming what is wrong, never a value.
 */
export function parseRecord(value: unknown, expectedId: string): CredentialRecord {
  const bad = (why: string): GatehouseError =>
    new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_INVALID_FILE, `invalid credential record: ${why}`)
  if (!isPlainObject(value)) throw bad('not an object')
  if (value.v !== 1) throw bad('unsupported version')
  if (value.id !== expectedId) throw bad('the id does not match the file name')
  if (typeof value.created_at !== 'string' || typeof value.updated_at !== 'string') throw bad('missing timestamps')
  let body: Omit<CredentialRecord, 'v' | 'id' | 'created_at' | 'updated_at'>
  try {
    const { v: _v, id: _id, created_at: _c, updated_at: _u, ...rest } = value
    body = validateCredentialInput(rest)
  } catch (err) {
    throw bad((err as Error).message.replace('@gatehouse/credential-vault: ', ''))
  }
  return { v: 1, id: expectedId, ...body, created_at: value.created_at, updated_at: value.updated_at }
}

/** The upstream headers for a credential (SPEC §3; the provider registry in core says which). */
export function upstreamHeadersFor(provider: ProviderName, type: CredentialType, secret: string): Record<string, string> {
  return upstreamCredentialHeaders(provider, type, secret)
}

export { ANTHROPIC_OAUTH_BETA }

/**
 * Read a plaintext credential file written before encryption was enabled. Accepts the vault's own
 * record shape, the management API body, and the per-domain credential shape (`api_key`,
 * camelCase `oauth.accessToken` …). The provider is taken from `provider`, or inferred from a
 * well-known key prefix. Returns undefined when the JSON is not credential-shaped (another
 * component's file).
 */
export function recordFromPlaintext(value: unknown): Omit<CredentialRecord, 'v' | 'id' | 'created_at' | 'updated_at'> | undefined {
  if (!isPlainObject(value)) return undefined
  const looksLikeCredential =
    value.type === 'api_key' || value.type === 'oauth' || typeof value.api_key === 'string' || isPlainObject(value.oauth)
  if (!looksLikeCredential) return undefined
  const token = typeof value.token === 'string' ? value.token : typeof value.api_key === 'string' ? value.api_key : undefined
  let oauth: Record<string, unknown> | undefined
  if (isPlainObject(value.oauth)) {
    const o = value.oauth
    oauth = {}
    const pick = (snake: string, camel: string): void => {
      const v = o[snake] ?? o[camel]
      if (v !== undefined) oauth![snake] = v
    }
    pick('access_token', 'accessToken')
    pick('refresh_token', 'refreshToken')
    pick('expires_at', 'expiresAt')
    pick('token_url', 'tokenUrl')
    pick('client_id', 'clientId')
    const scope = o.scope ?? o.scopes
    if (typeof scope === 'string') oauth.scope = scope
    else if (Array.isArray(scope) && scope.every((s) => typeof s === 'string')) oauth.scope = scope.join(' ')
  }
  const type = value.type === 'oauth' || (value.type === undefined && oauth) ? 'oauth' : 'api_key'
  const secret = type === 'oauth' ? (oauth?.access_token as string | undefined) : token
  const provider = isProviderName(value.provider) ? value.provider : inferProvider(secret, type)
  const input: Record<string, unknown> = { provider, type }
  if (type === 'oauth') input.oauth = oauth
  else input.token = token
  const label = typeof value.label === 'string' ? value.label : undefined
  if (label !== undefined) input.label = label
  return validateCredentialInput(input)
}

function inferProvider(secret: string | undefined, type: CredentialType): ProviderName | undefined {
  if (typeof secret !== 'string') return undefined
  if (secret.startsWith('sk-ant-')) return 'claude'
  if (secret.startsWith('AIza') || secret.startsWith('ya29.')) return 'gemini'
  if (type === 'api_key' && secret.startsWith('sk-')) return 'openai'
  return undefined
}
