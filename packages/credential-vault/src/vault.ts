import { inspect } from 'node:util'
import { isProviderName, maskSecret, maskSecrets, type Logger, type ProviderName, type SecurityEventHandler } from '@gatehouse/core'
import { notFound, PKG } from './errors'
import { isUnhealthy } from './health'
import { VaultMaintenance } from './maintenance'
import { resolveCredentialVaultConfig, type CredentialVaultConfig, type CredentialVaultOptions } from './options'
import { PermissionGuard } from './permissions'
import { CredentialPool } from './pool'
import { applyCredentialPatch, fileNameOf, ID_PATTERN, newCredentialId, validateCredentialInput, type CredentialInput, type CredentialPatch, type CredentialRecord } from './record'
import { OAuthRefresher } from './refresh'
import { resetHealth, VaultState, type Entry } from './state'
import { CredentialStore } from './store'
import type { CredentialExport, CredentialLease, CredentialSummary, EventContext, MigrateResult, ReencryptResult, VaultStatus } from './types'
import { DirectoryWatcher } from './watch'
import { CredentialWriter } from './writer'

/** What the management API calls: list, add, update, revoke, delete and status. Secrets are masked in every answer. */
export class CredentialManagement {
  constructor(
    private readonly state: VaultState,
    private readonly writer: Pick<CredentialWriter, 'persist' | 'unlink'>,
    private readonly pool: Pick<CredentialPool, 'providerStatus'>,
    private readonly guard: Pick<PermissionGuard, 'readable'>,
  ) {}

  list(): CredentialSummary[] {
    const now = Date.now()
    const out: CredentialSummary[] = []
    for (const entry of [...this.state.sortedEntries(), ...this.state.statics]) out.push(this.summarize(entry, now))
    for (const [file, err] of [...this.state.fileErrors].sort(([a], [b]) => a.localeCompare(b))) {
      out.push({ id: err.id, provider: null, type: null, source: 'vault', status: 'disabled', file, error: { code: err.code, message: err.message } })
    }
    return out
  }

  get(id: string): CredentialSummary | undefined {
    if (typeof id !== 'string') return undefined
    const entry = this.state.find(id)
    if (entry) return this.summarize(entry, Date.now())
    return this.list().find((s) => s.id === id)
  }

  async add(input: CredentialInput | unknown, context: EventContext): Promise<{ id: string }> {
    const body = validateCredentialInput(input)
    const now = new Date().toISOString()
    const id = newCredentialId()
    const record: CredentialRecord = { v: 1, id, ...body, created_at: now, updated_at: now }
    await this.writer.persist(record)
    this.state.config.logger.info(`${PKG}: credential added`, { credential_id: id, provider: record.provider, type: record.type })
    this.state.emit({
      ...context,
      event_type: 'config_change',
      provider: record.provider,
      result: 'credential_added',
      details: { action: 'credential_added', credential_id: id, type: record.type, source: 'api' },
    })
    return { id }
  }

  async update(id: string, patch: CredentialPatch | unknown, context: EventContext): Promise<CredentialSummary> {
    const entry = typeof id === 'string' && ID_PATTERN.test(id) ? this.state.entries.get(id) : undefined
    if (!entry) throw notFound('no credential with that id')
    const next = applyCredentialPatch(entry.record, patch)
    next.updated_at = new Date().toISOString()
    await this.writer.persist(next)
    resetHealth(entry)
    this.state.emit({
      ...context,
      event_type: 'config_change',
      provider: next.provider,
      result: 'credential_updated',
      details: { action: 'credential_updated', credential_id: id, fields: Object.keys(patch as object).sort() },
    })
    return this.summarize(entry, Date.now())
  }

  async revoke(provider: string, id: string | undefined, context: EventContext): Promise<{ revoked: string[] }> {
    if (!isProviderName(provider)) throw notFound('no credentials for that provider')
    const ids = this.revocable(provider, id)
    const revoked: string[] = []
    for (const one of ids) {
      await this.writer.unlink(one)
      revoked.push(one)
      this.emitRevoked(one, context, provider)
    }
    this.state.config.logger.info(`${PKG}: credentials revoked`, { provider, count: revoked.length })
    return { revoked }
  }

  async delete(id: string, context: EventContext): Promise<{ revoked: string[] }> {
    if (typeof id !== 'string' || !ID_PATTERN.test(id)) throw notFound('no credential with that id')
    const provider = this.state.entries.get(id)?.record.provider
    if (provider) return this.revoke(provider, id, context)
    if (!this.state.fileErrors.has(fileNameOf(id))) throw notFound('no credential with that id')
    await this.writer.unlink(id)
    this.emitRevoked(id, context)
    return { revoked: [id] }
  }

  status(): VaultStatus {
    const { config, fileErrors } = this.state
    const now = Date.now()
    const all = [...this.state.entries.values(), ...this.state.statics]
    const unhealthy = all.filter((e) => isUnhealthy(e, now, config.refreshSkewMs)).length
    const keyring = config.keyring
    return {
      dir: config.dir,
      readable: this.guard.readable() && !this.state.closed,
      encryption: keyring ? { enabled: true, current_key_id: keyring.current.kid, key_ids: keyring.keyIds } : { enabled: false, key_ids: [] },
      credentials: { total: all.length + fileErrors.size, active: all.length - unhealthy, unhealthy, disabled: fileErrors.size },
      providers: Object.fromEntries([...new Set(all.map((e) => e.record.provider))].map((p) => [p, this.pool.providerStatus(p, now)])),
      errors: [...fileErrors].map(([file, e]) => ({ file, id: e.id, code: e.code, message: e.message })),
    }
  }

  /** The ids a revoke takes: the one id (a disabled file too) or every vault credential of the provider. */
  private revocable(provider: ProviderName, id: string | undefined): string[] {
    if (id === undefined) {
      const ids = this.state
        .sortedEntries()
        .filter((e) => e.record.provider === provider)
        .map((e) => e.id)
      if (ids.length === 0) throw notFound('no credentials for that provider')
      return ids
    }
    if (typeof id !== 'string' || !ID_PATTERN.test(id)) throw notFound('no credential with that id')
    const entry = this.state.entries.get(id)
    const disabled = this.state.fileErrors.get(fileNameOf(id))
    if (entry ? entry.record.provider !== provider : !disabled) throw notFound('no credential with that id for that provider')
    return [id]
  }

  private emitRevoked(id: string, context: EventContext, provider?: ProviderName): void {
    this.state.emit({
      ...context,
      event_type: 'config_change',
      ...(provider !== undefined ? { provider } : {}),
      result: 'credential_revoked',
      details: { action: 'credential_revoked', credential_id: id },
    })
  }

  private summarize(entry: Entry, now: number): CredentialSummary {
    const r = entry.record
    const unhealthy = isUnhealthy(entry, now, this.state.config.refreshSkewMs)
    const s: CredentialSummary = {
      id: entry.id,
      provider: r.provider,
      type: r.type,
      source: entry.source,
      status: unhealthy ? 'unhealthy' : 'active',
      created_at: r.created_at,
      updated_at: r.updated_at,
    }
    if (r.label !== undefined) s.label = r.label
    if (entry.source === 'vault') {
      s.encrypted = entry.encrypted
      if (entry.kid) s.key_id = entry.kid
      s.file = entry.file!
    }
    if (r.type === 'api_key') s.token = maskSecret(r.token!)
    else {
      const o = r.oauth!
      s.oauth = { access_token: maskSecret(o.access_token) }
      if (o.refresh_token !== undefined) s.oauth.refresh_token = maskSecret(o.refresh_token)
      if (o.expires_at !== undefined) s.oauth.expires_at = new Date(o.expires_at).toISOString()
      if (o.token_url !== undefined) s.oauth.token_url = maskSecrets(o.token_url)
    }
    if (unhealthy) {
      const until = Math.max(entry.unhealthyUntil, entry.refresh.nextAttemptAt)
      if (until > now) s.unhealthy_until = new Date(until).toISOString()
      s.unhealthy_reason = entry.unhealthyUntil > now ? entry.unhealthyReason ?? 'rejected' : `refresh_failed:${entry.refresh.lastReason ?? 'unknown'}`
    }
    if (entry.lastUsedAt !== undefined) s.last_used_at = new Date(entry.lastUsedAt).toISOString()
    return s
  }
}

/**
 * The credential vault: encrypted credential files in one directory, loaded into memory, kept in
 * sync with the disk (fs.watch plus a periodic rescan), served to the proxy as a per-provider
 * pool with round robin, health tracking and OAuth refresh. Create it with
 * `createCredentialVault(options)`; call `shutdown()` when done.
 *
 * The work is done by one part per responsibility: the files (store, writer, permissions, watch),
 * the pool and its health, OAuth refresh, management calls, and the whole-vault maintenance
 * (export, rotation, migration). This class wires them and is what callers hold.
 */
export class CredentialVault {
  readonly config: CredentialVaultConfig
  private readonly state: VaultState
  private readonly store: CredentialStore
  private readonly writer: CredentialWriter
  private readonly pool: CredentialPool
  private readonly refresher: OAuthRefresher
  private readonly management: CredentialManagement
  private readonly maintenance: VaultMaintenance
  private readonly watcher: DirectoryWatcher

  constructor(options: CredentialVaultOptions) {
    const config = resolveCredentialVaultConfig(options)
    this.config = config
    const state = (this.state = new VaultState(config))
    const guard = new PermissionGuard(state)
    this.writer = new CredentialWriter(state, guard)
    this.store = new CredentialStore(state, guard, this.writer)
    this.refresher = new OAuthRefresher(state, this.writer)
    this.pool = new CredentialPool(state, this.refresher)
    this.management = new CredentialManagement(state, this.writer, this.pool, guard)
    this.maintenance = new VaultMaintenance(state, this.store, this.writer)
    this.store.open()
    state.emit({
      event_type: 'config_change',
      result: 'vault_loaded',
      details: {
        action: 'vault_loaded',
        credentials: state.entries.size,
        disabled: state.fileErrors.size,
        static: state.statics.length,
        encryption: config.encryptionEnabled,
        key_id: config.keyring?.current.kid,
      },
    })
    this.watcher = new DirectoryWatcher(
      { dir: config.dir, watch: config.watch, debounceMs: config.reloadDebounceMs, intervalMs: config.rescanIntervalMs, logger: config.logger },
      () => this.store.rescan(false),
    )
  }

  /** The event handler given in the options (the injection middleware uses it by default). */
  get onEvent(): SecurityEventHandler | undefined {
    return this.config.onEvent
  }

  get logger(): Logger {
    return this.config.logger
  }

  // ---------------------------------------------------------------- files

  /** Rescan the directory now (what fs.watch and the timer trigger). */
  reload(): void {
    this.store.rescan(false)
  }

  // ---------------------------------------------------------------- management

  /** Every credential, secrets masked (`GET /v0/management/auths`). Disabled files are listed with their error. */
  list(): CredentialSummary[] {
    return this.management.list()
  }

  /** One credential by id, secrets masked; undefined when unknown. */
  get(id: string): CredentialSummary | undefined {
    return this.management.get(id)
  }

  /**
   * Add a credential (`POST /v0/management/auths`): validated, written encrypted and 0600, served
   * at once. Throws GH_VAULT_INVALID_CREDENTIAL / GH_VAULT_INSECURE_TOKEN_URL (400) naming the
   * field, or GH_VAULT_WRITE_FAILED. Emits `config_change`.
   */
  add(input: CredentialInput | unknown, context: EventContext = {}): Promise<{ id: string }> {
    return this.management.add(input, context)
  }

  /**
   * Replace a credential's secret or label in place (the id stays). `token` for an API key;
   * `oauth` fields (merged) for an OAuth credential. Resets its health. Emits `config_change`.
   */
  update(id: string, patch: CredentialPatch | unknown, context: EventContext = {}): Promise<CredentialSummary> {
    return this.management.update(id, patch, context)
  }

  /**
   * Revoke (`DELETE /v0/management/auths/:provider[/:id]`): every vault credential of the provider,
   * or the one id (a disabled file too). Its file is deleted and it stops being served at once.
   * Static credentials come from the config and are not revocable here. Throws GH_VAULT_NOT_FOUND
   * (404) when nothing matches; a malformed id or provider never touches the disk.
   */
  revoke(provider: string, id?: string, context: EventContext = {}): Promise<{ revoked: string[] }> {
    return this.management.revoke(provider, id, context)
  }

  /** Delete one credential by id, whatever its provider (erasure). Same as revoke(provider, id). */
  delete(id: string, context: EventContext = {}): Promise<{ revoked: string[] }> {
    return this.management.delete(id, context)
  }

  /** For `/readyz` and `gatehouse doctor`: directory state, key ids, counts, disabled files. */
  status(): VaultStatus {
    return this.management.status()
  }

  // ---------------------------------------------------------------- export, key rotation and migration

  /**
   * Export every vault credential (`GET /v0/management/auths/export`), in a form `add()` takes
   * back. Secrets are masked unless `includeSecrets`; every export is a `credential_access` event
   * saying which.
   */
  export(options: { includeSecrets?: boolean } = {}, context: EventContext = {}): CredentialExport {
    return this.maintenance.export(options, context)
  }

  /**
   * Re-encrypt every credential file that is not under the current key (all of them with
   * `force`), each atomically, while the vault keeps serving. A file another process rewrote
   * meanwhile is re-read and retried (compare-and-swap), so no newer token is overwritten.
   * Disabled files are never rewritten: they are listed in `failed`.
   * This is what `gatehouse vault rotate-key` runs.
   */
  reencryptAll(options: { force?: boolean } = {}): Promise<ReencryptResult> {
    return this.maintenance.reencryptAll(options)
  }

  /**
   * Encrypt plaintext credential files in place (`gatehouse vault migrate`). Vault files stored
   * in plaintext are rewritten encrypted; other `*.json` files that hold a credential (the
   * management API body, or the per-domain `{type, api_key | oauth:{accessToken, …}}` shape) become
   * vault files with a vault-made id and the original is removed once the encrypted copy is
   * durable. A re-run after a crash converges (the new id is derived from the original name).
   * JSON that is not a credential, symlinks and files of other owners are left alone and
   * reported. With `dryRun`, nothing is written.
   */
  migrate(options: { dryRun?: boolean } = {}): Promise<MigrateResult> {
    return this.maintenance.migrate(options)
  }

  // ---------------------------------------------------------------- serving

  /**
   * A credential for `provider`, by round robin over its healthy credentials (vault ones, then the
   * static key). An OAuth token close to expiry is refreshed in the background; an expired one is
   * refreshed first (one refresh per credential however many requests wait). Resolves undefined
   * when none can be used: the caller answers 503.
   */
  acquire(provider: ProviderName): Promise<CredentialLease | undefined> {
    return Promise.resolve(this.pool.acquireNowOrLater(provider))
  }

  /**
   * acquire() without a promise when none is needed: the lease itself (or undefined) when a
   * credential can be used as it is, a promise only when every usable one must be refreshed first.
   * The request path uses this, to spare each request an asynchronous hop.
   */
  acquireNowOrLater(provider: ProviderName): CredentialLease | undefined | Promise<CredentialLease | undefined> {
    return this.pool.acquireNowOrLater(provider)
  }

  /**
   * Reject credential `credentialId` on proof that it is bad (see `CredentialLease.reject`): an
   * OAuth token is refreshed first (once per cool-down); otherwise it cools down for
   * `unhealthyCooldown`, unless it is the last usable credential of its provider.
   */
  reject(credentialId: string, reason: string): void {
    this.pool.reject(credentialId, reason)
  }

  /** Seconds until some credential of `provider` may be usable again (for Retry-After), if known. */
  retryAfterSeconds(provider: ProviderName): number | undefined {
    return this.pool.retryAfterSeconds(provider)
  }

  /** Refresh now (single-flight per credential). Resolves true on success. */
  refreshCredential(credentialId: string): Promise<boolean> {
    return this.refresher.refreshCredential(credentialId)
  }

  // ---------------------------------------------------------------- lifecycle

  /** Printing or serialising a vault shows its state, never a key or token. */
  toJSON(): unknown {
    return { dir: this.config.dir, credentials: this.list().length, closed: this.state.closed }
  }

  [inspect.custom](): string {
    const { entries, statics, fileErrors } = this.state
    return `CredentialVault { dir: ${JSON.stringify(this.config.dir)}, credentials: ${entries.size + statics.length}, disabled: ${fileErrors.size} }`
  }

  /** Stop watching and rescanning, wait for pending writes. Idempotent. */
  async shutdown(): Promise<void> {
    if (this.state.closed) return
    this.state.closed = true
    this.watcher.close()
    await this.writer.drain()
  }
}

/** Create a vault: validates options (throws GatehouseConfigError), secures the directory, loads every file, starts hot reload. */
export function createCredentialVault(options: CredentialVaultOptions): CredentialVault {
  return new CredentialVault(options)
}

/** Run `fn` on a vault of `options` that neither watches nor rescans, and shut it down after. */
async function withOneShotVault<T>(options: CredentialVaultOptions, fn: (vault: CredentialVault) => Promise<T>): Promise<T> {
  const vault = new CredentialVault({ ...options, watch: false, rescanInterval: 0 })
  try {
    return await fn(vault)
  } finally {
    await vault.shutdown()
  }
}

/**
 * `gatehouse vault rotate-key`: re-encrypt every file in `dir` under `encryption.key`, reading
 * them with `encryption.previousKeys`. A running gateway configured with both keys keeps serving
 * throughout and picks the rewritten files up by hot reload.
 */
export function rotateKey(options: CredentialVaultOptions & { force?: boolean | undefined }): Promise<ReencryptResult> {
  const { force, ...rest } = options
  return withOneShotVault(rest, (vault) => vault.reencryptAll(force === undefined ? {} : { force }))
}

/** `gatehouse vault migrate`: encrypt the plaintext credential files in `dir` (see `CredentialVault.migrate`). */
export function migrate(options: CredentialVaultOptions & { dryRun?: boolean | undefined }): Promise<MigrateResult> {
  const { dryRun, ...rest } = options
  return withOneShotVault(rest, (vault) => vault.migrate(dryRun === undefined ? {} : { dryRun }))
}
