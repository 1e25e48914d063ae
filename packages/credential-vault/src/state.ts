import { emitSecurityEvent, type ProviderName, type SecurityEventInput } from '@gatehouse/core'
import { PKG, type CredentialVaultErrorCode } from './errors'
import type { CredentialVaultConfig } from './options'
import type { CredentialRecord } from './record'

/** Where an OAuth credential's refresh stands: at most one in flight, backoff after failures. */
export interface RefreshState {
  inFlight: Promise<boolean> | undefined
  failures: number
  nextAttemptAt: number
  lastReason: string | undefined
  lastSuccessAt: number
}

/** A credential held in memory: its record, where it came from, and its health. */
export interface Entry {
  readonly id: string
  readonly source: 'vault' | 'static'
  readonly file: string | undefined
  record: CredentialRecord
  encrypted: boolean
  kid: string | undefined
  sig: string
  hash: string
  unhealthyUntil: number
  unhealthyReason: string | undefined
  /** The last upstream status reported for this credential (bookkeeping). */
  lastStatus?: number
  /** The access token was rejected: refresh it before the next use. */
  stale: boolean
  lastUsedAt: number | undefined
  refresh: RefreshState
  /** The upstream headers for `record`, made once per record rather than per request. */
  headers?: { record: CredentialRecord; value: Readonly<Record<string, string>> }
}

/** A vault file that cannot be used (insecure, wrong key, altered, plaintext …): its credential is disabled. */
export interface FileError {
  id: string
  code: CredentialVaultErrorCode
  message: string
  sig: string
}

export const newRefreshState = (): RefreshState => ({
  inFlight: undefined,
  failures: 0,
  nextAttemptAt: 0,
  lastReason: undefined,
  lastSuccessAt: 0,
})

/** A credential entering memory: healthy, never used, no refresh history. */
export function newEntry(fields: Pick<Entry, 'id' | 'source' | 'file' | 'record' | 'encrypted' | 'kid' | 'sig' | 'hash'>): Entry {
  return { ...fields, unhealthyUntil: 0, unhealthyReason: undefined, stale: false, lastUsedAt: undefined, refresh: newRefreshState() }
}

/** Forget a credential's health once its secret changed: the new one starts clean. */
export function resetHealth(entry: Entry): void {
  entry.unhealthyUntil = 0
  entry.unhealthyReason = undefined
  entry.stale = false
  entry.refresh = newRefreshState()
}

function staticEntries(config: CredentialVaultConfig): Entry[] {
  const started = new Date().toISOString()
  return (Object.entries(config.staticCredentials) as [ProviderName, string][]).map(([provider, token]) =>
    newEntry({
      id: `static_${provider}`,
      source: 'static',
      file: undefined,
      record: { v: 1, id: `static_${provider}`, provider, type: 'api_key', token, label: `providers.${provider}.api_key`, created_at: started, updated_at: started },
      encrypted: false,
      kid: undefined,
      sig: '',
      hash: '',
    }),
  )
}

/**
 * What the parts of the vault share: the config, the credentials in memory (vault files by id, the
 * static keys, the disabled files by name) and the event sink. The set of entries changes only
 * through `setEntry`, `deleteEntry` and `setRecord`, which keep the per-provider lists current.
 */
export class VaultState {
  readonly entries = new Map<string, Entry>()
  readonly statics: readonly Entry[]
  readonly fileErrors = new Map<string, FileError>()
  closed = false
  /** candidates() by provider; cleared whenever an entry is added, removed or replaced. */
  private readonly candidateCache = new Map<ProviderName, Entry[]>()

  constructor(readonly config: CredentialVaultConfig) {
    this.statics = staticEntries(config)
  }

  emit(input: SecurityEventInput): void {
    emitSecurityEvent(this.config.onEvent, input, (err) =>
      this.config.logger.error(`${PKG}: an onEvent handler threw`, { error: err instanceof Error ? err.message : String(err) }),
    )
  }

  setEntry(entry: Entry): void {
    this.entries.set(entry.id, entry)
    this.candidateCache.clear()
  }

  deleteEntry(id: string): void {
    this.entries.delete(id)
    this.candidateCache.clear()
  }

  /** Replace an entry's record (its provider may change with it). */
  setRecord(entry: Entry, record: CredentialRecord): void {
    entry.record = record
    this.candidateCache.clear()
  }

  /** A vault credential or a static key by id. */
  find(id: string): Entry | undefined {
    return this.entries.get(id) ?? this.statics.find((e) => e.id === id)
  }

  /** Still the entry the vault serves under its id (not revoked or replaced since it was picked). */
  isLive(entry: Entry): boolean {
    return entry.source === 'static' || this.entries.get(entry.id) === entry
  }

  sortedEntries(): Entry[] {
    return [...this.entries.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  /** A provider's credentials in serving order (vault ones by id, then the static key), kept until the set changes. */
  candidates(provider: ProviderName): Entry[] {
    let list = this.candidateCache.get(provider)
    if (list === undefined) {
      list = [...this.sortedEntries().filter((e) => e.record.provider === provider), ...this.statics.filter((e) => e.record.provider === provider)]
      this.candidateCache.set(provider, list)
    }
    return list
  }
}
