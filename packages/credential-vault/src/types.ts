import type { Logger, ProviderName, SecurityEventHandler } from '@gatehouse/core'
import type { CredentialType } from './record'

/** Who asked: copied into the events a management call emits. */
export interface EventContext {
  ip?: string
  user_id?: string
  request_id?: string
}

/**
 * One use of a credential, returned by `acquire(provider)`. `headers` holds the secret: set them on
 * the upstream request and nowhere else. Call `report(status)` with the upstream's answer, and
 * `reject(reason)` only with proof that the credential itself is bad.
 */
export interface CredentialLease {
  readonly credentialId: string
  readonly provider: ProviderName
  readonly type: CredentialType
  readonly source: 'vault' | 'static'
  /** Header name (lower case) → value, per SPEC §3. Contains the secret. */
  readonly headers: Readonly<Record<string, string>>
  /**
   * Report the upstream status for this use (bookkeeping only: no status takes a credential out of
   * service, since any tenant can provoke a 401 or 403 from an endpoint the key may not use). First
   * call counts.
   */
  report(status: number): void
  /**
   * The provider's answer proved this credential bad (its invalid-key answer to a model call): an
   * OAuth token is refreshed first; otherwise the credential cools down, unless it is the last
   * usable one of its provider, which keeps serving (logged, `kept_last_credential` event, counted
   * in `status()`). First call counts.
   */
  reject(reason: string): void
}

/** What the injection middleware needs from a vault (a CredentialVault fits). */
export interface CredentialSource {
  acquire(provider: ProviderName): Promise<CredentialLease | undefined>
  /** acquire() that answers at once when it can (a promise only when it must wait). Optional. */
  acquireNowOrLater?(provider: ProviderName): CredentialLease | undefined | Promise<CredentialLease | undefined>
  retryAfterSeconds(provider: ProviderName): number | undefined
  readonly onEvent: SecurityEventHandler | undefined
  readonly logger: Logger
}

/** A credential as the management API lists it: secrets masked. */
export interface CredentialSummary {
  id: string
  provider: ProviderName | null
  type: CredentialType | null
  label?: string
  source: 'vault' | 'static'
  /** active: served; unhealthy: skipped for now (rejected upstream, or refresh failing); disabled: its file cannot be used. */
  status: 'active' | 'unhealthy' | 'disabled'
  encrypted?: boolean
  key_id?: string
  file?: string
  created_at?: string
  updated_at?: string
  /** api_key: the key, masked. */
  token?: string
  /** oauth: tokens masked, expiry as ISO date. */
  oauth?: { access_token: string; refresh_token?: string; expires_at?: string; token_url?: string }
  unhealthy_until?: string
  unhealthy_reason?: string
  last_used_at?: string
  error?: { code: string; message: string }
}

/** One credential in an export: secrets masked unless `includeSecrets`. Re-importable with `add()`. */
export interface ExportedCredential {
  id: string
  provider: ProviderName
  type: CredentialType
  label?: string
  created_at: string
  updated_at: string
  token?: string
  oauth?: { access_token: string; refresh_token?: string; expires_at?: number; token_url?: string; client_id?: string; scope?: string }
}

export interface CredentialExport {
  version: 1
  exported_at: string
  include_secrets: boolean
  credentials: ExportedCredential[]
}

export interface VaultStatus {
  dir: string
  /** The directory is readable and safe (what `/readyz` checks). */
  readable: boolean
  encryption: { enabled: boolean; current_key_id?: string; key_ids: string[] }
  credentials: { total: number; active: number; unhealthy: number; disabled: number }
  /**
   * Per provider: how many credentials are usable now, and how many times a rejection was not
   * applied because the credential was the provider's last usable one (alert on it: the provider
   * answers with a key it says is invalid).
   */
  providers: Partial<Record<ProviderName, { usable: number; kept_last_rejections: number }>>
  errors: { file: string; id: string; code: string; message: string }[]
}

export interface ReencryptResult {
  reencrypted: string[]
  skipped: string[]
  failed: { id: string; file: string; code: string; message: string }[]
  /** Cluster mode: the OAuth tokens the gateways share in Redis, by credential id. */
  tokens?: { reencrypted: string[]; skipped: string[] }
}

export interface MigrateResult {
  migrated: { file: string; id: string; provider: ProviderName }[]
  skipped: { file: string; reason: string }[]
  failed: { file: string; code: string; message: string }[]
}
