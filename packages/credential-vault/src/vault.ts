import { inspect } from 'node:util'
import { GatehouseError, type Logger, type ProviderName, type SecurityEventHandler } from '@gatehouse/core'
import { CredentialVaultErrorCodes, PKG } from './errors'
import { VaultMaintenance } from './maintenance'
import { CredentialManagement } from './management'
import { resolveCredentialVaultConfig, type CredentialVaultConfig, type CredentialVaultOptions } from './options'
import { PermissionGuard } from './permissions'
import { CredentialPool } from './pool'
import type { CredentialInput, CredentialPatch } from './record'
import { RedisRecordStore } from './records'
import { OAuthRefresher } from './refresh'
import { VaultState } from './state'
import { CredentialStore } from './store'
import type { CredentialExport, CredentialLease, CredentialSummary, EventContext, MigrateResult, ReencryptResult, VaultStatus } from './types'
import { DirectoryWatcher } from './watch'
import { CredentialWriter } from './writer'

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
  private readonly watcher: DirectoryWatcher | undefined
  /** Cluster mode with `cluster.records`: the records live in Redis, not in the directory. */
  private readonly records: RedisRecordStore | undefined

  constructor(options: CredentialVaultOptions) {
    const config = resolveCredentialVaultConfig(options)
    this.config = config
    const state = (this.state = new VaultState(config))
    const guard = new PermissionGuard(state)
    this.writer = new CredentialWriter(state, guard)
    this.store = new CredentialStore(state, guard, this.writer)
    const records = (this.records = config.cluster?.records ? new RedisRecordStore(state, config.cluster) : undefined)
    const writer = records ?? this.writer
    this.refresher = new OAuthRefresher(state, writer)
    this.pool = new CredentialPool(state, this.refresher)
    this.management = new CredentialManagement(state, writer, this.pool, records ? { readable: () => records.ready && !state.closed } : guard)
    this.maintenance = new VaultMaintenance(state, records ? { rescan: () => records.resync() } : this.store, writer, this.refresher.coordinator)
    if (!records) this.store.open()
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
    this.watcher = records
      ? undefined
      : new DirectoryWatcher(
          { dir: config.dir, watch: config.watch, debounceMs: config.reloadDebounceMs, intervalMs: config.rescanIntervalMs, logger: config.logger },
          () => this.store.rescan(false),
        )
  }

  /**
   * Cluster mode with `cluster.records`: read the shared records and follow their changes. Until
   * it resolves no vault credential is served; it rejects (GH_CORE_SHARED_STATE_UNAVAILABLE) while
   * Redis cannot be read, and keeps trying. Resolves at once in file mode.
   */
  async start(): Promise<void> {
    await this.records?.start()
  }

  /** With `cluster.records`: the shared records' version in this gateway's copy (undefined in file mode). */
  recordsVersion(): number | undefined {
    return this.records?.version
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
    if (!this.records) this.store.rescan(false)
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
   * Re-encrypt every credential that is not under the current key (all of them with `force`), each
   * atomically, while the vault keeps serving: the files of the directory, or with
   * `cluster.records` the records in Redis (call `start()` first). A credential another process
   * rewrote meanwhile is re-read and retried (compare-and-set), so no newer token is overwritten.
   * Disabled credentials are never rewritten: they are listed in `failed`. In cluster mode the
   * OAuth tokens the gateways share in Redis are re-sealed too (`tokens`).
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
    if (this.records) return Promise.reject(filesOnly('migration of plaintext files'))
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
    this.watcher?.close()
    await this.writer.drain()
    await this.records?.close()
  }
}

const filesOnly = (what: string): GatehouseError =>
  new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_INVALID_OPTIONS, `${PKG}: ${what} works on the credential directory; with cluster.records the records are in Redis`, 400)

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
 * `gatehouse vault rotate-key`: re-encrypt every file in `dir` (with `cluster.records`: every
 * record in Redis, and the OAuth tokens shared there) under `encryption.key`, reading them with
 * `encryption.previousKeys`. A running gateway configured with both keys keeps serving throughout
 * and picks the rewritten credentials up (hot reload, or the records' change notification).
 */
export function rotateKey(options: CredentialVaultOptions & { force?: boolean | undefined }): Promise<ReencryptResult> {
  const { force, ...rest } = options
  return withOneShotVault(rest, async (vault) => {
    await vault.start()
    return vault.reencryptAll(force === undefined ? {} : { force })
  })
}

/** `gatehouse vault migrate`: encrypt the plaintext credential files in `dir` (see `CredentialVault.migrate`). */
export function migrate(options: CredentialVaultOptions & { dryRun?: boolean | undefined }): Promise<MigrateResult> {
  const { dryRun, ...rest } = options
  return withOneShotVault(rest, (vault) => vault.migrate(dryRun === undefined ? {} : { dryRun }))
}
