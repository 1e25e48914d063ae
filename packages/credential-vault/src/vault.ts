import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { inspect } from 'node:util'
import {
  GatehouseConfigError,
  GatehouseError,
  emitSecurityEvent,
  isGatehouseError,
  isProviderName,
  maskSecret,
  maskSecrets,
  type Logger,
  type ProviderName,
  type SecurityEventHandler,
  type SecurityEventInput,
} from '@gatehouse/core'
import { isEnvelopeShaped, open, seal } from './envelope'
import { CredentialVaultErrorCodes, PKG, type CredentialVaultErrorCode } from './errors'
import { TokenRefreshError, requestTokenRefresh } from './oauth'
import { RefreshCoordinator, type SharedTokens } from './cluster'
import { resolveCredentialVaultConfig, type CredentialVaultConfig, type CredentialVaultOptions } from './options'
import {
  FILE_PATTERN,
  ID_PATTERN,
  applyCredentialPatch,
  fileNameOf,
  newCredentialId,
  parseRecord,
  recordFromPlaintext,
  upstreamHeadersFor,
  validateCredentialInput,
  type CredentialInput,
  type CredentialPatch,
  type CredentialRecord,
} from './record'
import { ensureSecureDir, insecureReason, readSecureFileSync, removeFile, removeStaleTempFiles, writeFileAtomic } from './secure-fs'
import type { CredentialExport, CredentialLease, CredentialSummary, EventContext, ExportedCredential, MigrateResult, ReencryptResult, VaultStatus } from './types'

const STALE_TEMP_MS = 60_000

interface RefreshState {
  inFlight: Promise<boolean> | undefined
  failures: number
  nextAttemptAt: number
  lastReason: string | undefined
  lastSuccessAt: number
}

interface Entry {
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

interface FileError {
  id: string
  code: CredentialVaultErrorCode
  message: string
  sig: string
}

const newRefreshState = (): RefreshState => ({
  inFlight: undefined,
  failures: 0,
  nextAttemptAt: 0,
  lastReason: undefined,
  lastSuccessAt: 0,
})

const signatureOf = (st: fs.Stats): string => `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.mode}:${st.uid}`
const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex')

/** JSON with object keys sorted, to compare records whatever order their fields were set in. */
function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>
    return `{${Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableStringify(obj[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(value)
}

const secretOf = (record: CredentialRecord): string => (record.type === 'oauth' ? record.oauth!.access_token : record.token!)

function notFound(message: string): GatehouseError {
  return new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_NOT_FOUND, `${PKG}: ${message}`, 404)
}

/**
 * The credential vault: encrypted credential files in one directory, loaded into memory, kept in
 * sync with the disk (fs.watch plus a periodic rescan), served to the proxy as a per-provider
 * pool with round robin, health tracking and OAuth refresh. Create it with
 * `createCredentialVault(options)`; call `shutdown()` when done.
 */
export class CredentialVault {
  readonly config: CredentialVaultConfig
  /** Cluster mode: OAuth refresh single-flight across the gateways sharing a Redis. */
  private readonly coordinator: RefreshCoordinator | undefined
  private readonly entries = new Map<string, Entry>()
  /** candidates() by provider; cleared whenever an entry is added, removed or replaced. */
  private readonly candidateCache = new Map<ProviderName, Entry[]>()
  private readonly fileErrors = new Map<string, FileError>()
  private readonly statics: Entry[] = []
  private readonly keptLast = new Map<ProviderName, number>()
  private readonly rr = new Map<ProviderName, number>()
  private readonly writeQueues = new Map<string, Promise<unknown>>()
  private readonly pendingWrites = new Set<string>()
  private readonly reportedInsecure = new Map<string, string>()
  private watcher: fs.FSWatcher | undefined
  private rescanTimer: NodeJS.Timeout | undefined
  private debounceTimer: NodeJS.Timeout | undefined
  private closed = false
  private dirProblem: string | undefined

  constructor(options: CredentialVaultOptions) {
    this.config = resolveCredentialVaultConfig(options)
    if (this.config.cluster && this.config.keyring) this.coordinator = new RefreshCoordinator(this.config.cluster, this.config.keyring, this.config.refreshTimeoutMs)
    try {
      const check = ensureSecureDir(this.config.dir, { create: this.config.createDir, allowInsecure: this.config.allowInsecurePermissions })
      this.reportDirCheck(check)
    } catch (err) {
      const code = isGatehouseError(err) ? err.code : CredentialVaultErrorCodes.GH_VAULT_INSECURE_DIR
      throw new GatehouseConfigError(code, `${PKG}: dir: ${(err as Error).message}`, { cause: err })
    }
    const started = new Date().toISOString()
    for (const [provider, token] of Object.entries(this.config.staticCredentials) as [ProviderName, string][]) {
      this.statics.push({
        id: `static_${provider}`,
        source: 'static',
        file: undefined,
        record: { v: 1, id: `static_${provider}`, provider, type: 'api_key', token, label: `providers.${provider}.api_key`, created_at: started, updated_at: started },
        encrypted: false,
        kid: undefined,
        sig: '',
        hash: '',
        unhealthyUntil: 0,
        unhealthyReason: undefined,
        stale: false,
        lastUsedAt: undefined,
        refresh: newRefreshState(),
      })
    }
    try {
      removeStaleTempFiles(this.config.dir, fs.readdirSync(this.config.dir), STALE_TEMP_MS, Date.now())
    } catch {
      // the rescan below reports an unreadable directory
    }
    this.rescan(true)
    this.emit({
      event_type: 'config_change',
      result: 'vault_loaded',
      details: {
        action: 'vault_loaded',
        credentials: this.entries.size,
        disabled: this.fileErrors.size,
        static: this.statics.length,
        encryption: this.config.encryptionEnabled,
        key_id: this.config.keyring?.current.kid,
      },
    })
    if (this.config.watch) this.startWatching()
    if (this.config.rescanIntervalMs > 0) {
      this.rescanTimer = setInterval(() => this.rescan(false), this.config.rescanIntervalMs)
      this.rescanTimer.unref()
    }
  }

  /** The event handler given in the options (the injection middleware uses it by default). */
  get onEvent(): SecurityEventHandler | undefined {
    return this.config.onEvent
  }

  get logger(): Logger {
    return this.config.logger
  }

  // ---------------------------------------------------------------- loading and hot reload

  private startWatching(): void {
    try {
      this.watcher = fs.watch(this.config.dir, { persistent: false }, () => this.scheduleRescan())
      this.watcher.on('error', (err) => {
        this.config.logger.warn(`${PKG}: watching the credential directory failed; relying on the periodic rescan`, {
          code: (err as NodeJS.ErrnoException).code,
        })
        this.watcher?.close()
        this.watcher = undefined
      })
    } catch (err) {
      this.config.logger.warn(`${PKG}: cannot watch the credential directory; relying on the periodic rescan`, {
        code: (err as NodeJS.ErrnoException).code,
      })
    }
  }

  private scheduleRescan(): void {
    if (this.closed) return
    if (this.debounceTimer) clearTimeout(this.debounceTimer)
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined
      this.rescan(false)
    }, this.config.reloadDebounceMs)
    this.debounceTimer.unref()
  }

  /**
   * Bring memory in line with the directory: load new and changed files, drop removed ones. A
   * file that fails (insecure, wrong key, altered, truncated) disables that credential only, with
   * an error event; nothing is ever written by a read. Runs on fs.watch events, on the timer, and
   * on demand (`reload()`).
   */
  private rescan(initial: boolean): void {
    if (this.closed) return
    let names: string[]
    try {
      const check = ensureSecureDir(this.config.dir, { create: false, allowInsecure: this.config.allowInsecurePermissions })
      this.reportDirCheck(check)
      names = fs.readdirSync(this.config.dir)
      this.dirProblem = undefined
    } catch (err) {
      const message = (err as Error).message
      if (this.dirProblem !== message) {
        this.dirProblem = message
        this.config.logger.error(`${PKG}: the credential directory cannot be read; keeping the credentials already loaded`, {
          reason: message,
        })
        this.emit({
          event_type: 'security_violation',
          result: 'vault_dir_unreadable',
          details: { code: isGatehouseError(err) ? err.code : CredentialVaultErrorCodes.GH_VAULT_INSECURE_DIR, reason: message },
        })
      }
      return
    }
    const seen = new Set<string>()
    for (const name of names.sort()) {
      if (!FILE_PATTERN.test(name)) continue
      seen.add(name)
      const id = name.slice(0, -'.json'.length)
      if (this.pendingWrites.has(id)) continue
      let st: fs.Stats
      try {
        st = fs.lstatSync(join(this.config.dir, name))
      } catch {
        seen.delete(name)
        continue
      }
      const sig = signatureOf(st)
      if (this.entries.get(id)?.sig === sig || this.fileErrors.get(name)?.sig === sig) continue
      this.loadFile(name, id, sig, initial)
    }
    for (const [id, entry] of this.entries) {
      if (seen.has(entry.file!) || this.pendingWrites.has(id)) continue
      this.entries.delete(id)
      this.candidateCache.clear()
      this.config.logger.info(`${PKG}: credential removed from disk`, { credential_id: id, provider: entry.record.provider })
      this.emit({
        event_type: 'config_change',
        provider: entry.record.provider,
        result: 'credential_removed',
        details: { action: 'credential_removed', credential_id: id, source: 'disk' },
      })
    }
    for (const name of [...this.fileErrors.keys()]) if (!seen.has(name)) this.fileErrors.delete(name)
  }

  private reportDirCheck(check: { fixed?: string; insecure?: string }): void {
    if (check.fixed) {
      this.config.logger.warn(`${PKG}: ${check.fixed}`)
      this.emit({ event_type: 'config_change', result: 'permissions_fixed', details: { action: 'permissions_fixed', reason: check.fixed } })
    }
    if (check.insecure && this.reportedInsecure.get('.') !== check.insecure) {
      this.reportedInsecure.set('.', check.insecure)
      this.config.logger.warn(`${PKG}: ${check.insecure} (accepted: allowInsecurePermissions is on)`)
      this.emit({ event_type: 'security_violation', result: 'insecure_permissions_allowed', details: { reason: check.insecure } })
    }
  }

  private loadFile(name: string, id: string, sig: string, initial: boolean): void {
    const existing = this.entries.get(id)
    try {
      const read = readSecureFileSync(join(this.config.dir, name), {
        allowInsecure: this.config.allowInsecurePermissions,
        maxBytes: this.config.maxFileBytes,
      })
      const hash = sha256(read.data)
      if (read.insecure && this.reportedInsecure.get(name) !== read.insecure) {
        this.reportedInsecure.set(name, read.insecure)
        this.config.logger.warn(`${PKG}: ${read.insecure} (accepted: allowInsecurePermissions is on)`, { credential_id: id })
        this.emit({
          event_type: 'security_violation',
          result: 'insecure_permissions_allowed',
          details: { credential_id: id, file: name, reason: read.insecure },
        })
      }
      if (existing && existing.hash === hash) {
        existing.sig = sig
        return
      }
      const { record, encrypted, kid } = this.decode(id, read.data)
      this.fileErrors.delete(name)
      if (existing) {
        const same = stableStringify(existing.record) === stableStringify(record)
        existing.sig = sig
        existing.hash = hash
        existing.encrypted = encrypted
        existing.kid = kid
        if (same) return
        existing.record = record
        this.candidateCache.clear()
        existing.unhealthyUntil = 0
        existing.unhealthyReason = undefined
        existing.stale = false
        existing.refresh = newRefreshState()
        this.config.logger.info(`${PKG}: credential changed on disk`, { credential_id: id, provider: record.provider })
        this.emit({
          event_type: 'config_change',
          provider: record.provider,
          result: 'credential_changed',
          details: { action: 'credential_changed', credential_id: id, source: 'disk' },
        })
        return
      }
      this.entries.set(id, {
        id,
        source: 'vault',
        file: name,
        record,
        encrypted,
        kid,
        sig,
        hash,
        unhealthyUntil: 0,
        unhealthyReason: undefined,
        stale: false,
        lastUsedAt: undefined,
        refresh: newRefreshState(),
      })
      this.candidateCache.clear()
      if (!initial) {
        this.config.logger.info(`${PKG}: credential loaded from disk`, { credential_id: id, provider: record.provider })
        this.emit({
          event_type: 'config_change',
          provider: record.provider,
          result: 'credential_added',
          details: { action: 'credential_added', credential_id: id, source: 'disk' },
        })
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      const code: CredentialVaultErrorCode = isGatehouseError(err)
        ? (err.code as CredentialVaultErrorCode)
        : CredentialVaultErrorCodes.GH_VAULT_INVALID_FILE
      const message = isGatehouseError(err)
        ? err.message
        : `the file cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`
      if (existing) this.entries.delete(id)
      this.candidateCache.clear()
      this.fileErrors.set(name, { id, code, message, sig })
      this.config.logger.error(`${PKG}: credential disabled: ${message}`, { credential_id: id, code })
      this.emit({
        event_type: 'security_violation',
        ...(existing ? { provider: existing.record.provider } : {}),
        result: 'credential_disabled',
        details: { action: 'credential_disabled', credential_id: id, file: name, code, reason: message },
      })
    }
  }

  /** File bytes → record. Throws GatehouseError with a vault code; never includes file content. */
  private decode(id: string, data: Buffer, allowPlaintext = false): { record: CredentialRecord; encrypted: boolean; kid: string | undefined } {
    let json: unknown
    try {
      json = JSON.parse(data.toString('utf8'))
    } catch {
      throw new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_INVALID_FILE, 'the file is not valid JSON (truncated or altered?)')
    }
    if (isEnvelopeShaped(json)) {
      if (!this.config.keyring) {
        throw new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_KEY_MISSING, 'the file is encrypted and no encryption key is configured')
      }
      const opened = open(this.config.keyring, id, json)
      let inner: unknown
      try {
        inner = JSON.parse(opened.plaintext.toString('utf8'))
      } finally {
        opened.plaintext.fill(0)
      }
      return { record: parseRecord(inner, id), encrypted: true, kid: opened.kid }
    }
    // A downgrade: with encryption on, a plaintext file is what anyone who can write the directory,
    // without the key, would plant to route requests through their own account. Only `migrate`,
    // run by the operator, reads one (to encrypt it).
    if (this.config.encryptionEnabled && !allowPlaintext) {
      throw new GatehouseError(
        CredentialVaultErrorCodes.GH_VAULT_PLAINTEXT_REFUSED,
        'the file is not encrypted while encryption is on, so it is refused (it may have been planted); if it is yours, encrypt it with `gatehouse vault migrate`',
      )
    }
    return { record: parseRecord(json, id), encrypted: false, kid: undefined }
  }

  /** Rescan the directory now (what fs.watch and the timer trigger). */
  reload(): void {
    this.rescan(false)
  }

  // ---------------------------------------------------------------- writing

  private serialize(record: CredentialRecord): Buffer {
    const plaintext = Buffer.from(JSON.stringify(record), 'utf8')
    if (!this.config.keyring) return Buffer.concat([plaintext, Buffer.from('\n')])
    try {
      return Buffer.from(`${JSON.stringify(seal(this.config.keyring, record.id, plaintext))}\n`, 'utf8')
    } finally {
      plaintext.fill(0)
    }
  }

  /** Run `fn` after every earlier write of the same credential (writes of one id never overlap). */
  private enqueue<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.writeQueues.get(id) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.catch(() => undefined)
    this.writeQueues.set(id, tail)
    void tail.then(() => {
      if (this.writeQueues.get(id) === tail) this.writeQueues.delete(id)
    })
    return run
  }

  /**
   * Write a record atomically (0600, encrypted under the current key when encryption is on) and
   * make memory match. With `expectSig`, the write is a compare-and-swap against the file as it was
   * read (another process may have rewritten it meanwhile): false means it changed and nothing was
   * written.
   */
  private persist(record: CredentialRecord, expectSig?: string): Promise<boolean> {
    if (this.closed) return Promise.reject(new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_SHUT_DOWN, `${PKG}: the vault is shut down`, 503))
    const id = record.id
    const name = fileNameOf(id)
    const path = join(this.config.dir, name)
    return this.enqueue(id, async () => {
      this.pendingWrites.add(id)
      try {
        this.reportDirCheck(ensureSecureDir(this.config.dir, { create: true, allowInsecure: this.config.allowInsecurePermissions }))
        const data = this.serialize(record)
        const cas =
          expectSig === undefined
            ? undefined
            : (): boolean => {
                try {
                  return signatureOf(fs.lstatSync(path)) === expectSig
                } catch {
                  return false
                }
              }
        const written = await writeFileAtomic(this.config.dir, name, data, cas)
        if (!written) return false
        const st = fs.lstatSync(path)
        const entry = this.entries.get(id)
        const fields = { sig: signatureOf(st), hash: sha256(data), encrypted: this.config.keyring !== undefined, kid: this.config.keyring?.current.kid }
        if (entry) {
          Object.assign(entry, fields)
          // A re-encryption queued before a refresh must not bring the older tokens back into memory.
          if (record.updated_at >= entry.record.updated_at) entry.record = record
          this.candidateCache.clear()
        } else {
          this.entries.set(id, {
            id,
            source: 'vault',
            file: name,
            record,
            ...fields,
            unhealthyUntil: 0,
            unhealthyReason: undefined,
            stale: false,
            lastUsedAt: undefined,
            refresh: newRefreshState(),
          })
          this.candidateCache.clear()
        }
        this.fileErrors.delete(name)
        return true
      } catch (err) {
        if (isGatehouseError(err)) throw err
        throw new GatehouseError(
          CredentialVaultErrorCodes.GH_VAULT_WRITE_FAILED,
          `${PKG}: writing a credential file failed (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
          500,
          { cause: err },
        )
      } finally {
        this.pendingWrites.delete(id)
      }
    })
  }

  private unlinkCredential(id: string): Promise<boolean> {
    return this.enqueue(id, async () => {
      this.pendingWrites.add(id)
      try {
        this.entries.delete(id)
        this.candidateCache.clear()
        this.fileErrors.delete(fileNameOf(id))
        return await removeFile(this.config.dir, fileNameOf(id))
      } catch (err) {
        throw new GatehouseError(
          CredentialVaultErrorCodes.GH_VAULT_WRITE_FAILED,
          `${PKG}: removing a credential file failed (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
          500,
          { cause: err },
        )
      } finally {
        this.pendingWrites.delete(id)
      }
    })
  }

  // ---------------------------------------------------------------- management

  /** Every credential, secrets masked (`GET /v0/management/auths`). Disabled files are listed with their error. */
  list(): CredentialSummary[] {
    const now = Date.now()
    const out: CredentialSummary[] = []
    for (const entry of [...this.sortedEntries(), ...this.statics]) out.push(this.summarize(entry, now))
    for (const [file, err] of [...this.fileErrors].sort(([a], [b]) => a.localeCompare(b))) {
      out.push({ id: err.id, provider: null, type: null, source: 'vault', status: 'disabled', file, error: { code: err.code, message: err.message } })
    }
    return out
  }

  private summarize(entry: Entry, now: number): CredentialSummary {
    const r = entry.record
    const unhealthy = this.isUnhealthy(entry, now)
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

  /** One credential by id, secrets masked; undefined when unknown. */
  get(id: string): CredentialSummary | undefined {
    if (typeof id !== 'string') return undefined
    const entry = this.entries.get(id) ?? this.statics.find((e) => e.id === id)
    if (entry) return this.summarize(entry, Date.now())
    return this.list().find((s) => s.id === id)
  }

  /**
   * Add a credential (`POST /v0/management/auths`): validated, written encrypted and 0600, served
   * at once. Throws GH_VAULT_INVALID_CREDENTIAL / GH_VAULT_INSECURE_TOKEN_URL (400) naming the
   * field, or GH_VAULT_WRITE_FAILED. Emits `config_change`.
   */
  async add(input: CredentialInput | unknown, context: EventContext = {}): Promise<{ id: string }> {
    const body = validateCredentialInput(input)
    const now = new Date().toISOString()
    const id = newCredentialId()
    const record: CredentialRecord = { v: 1, id, ...body, created_at: now, updated_at: now }
    await this.persist(record)
    this.config.logger.info(`${PKG}: credential added`, { credential_id: id, provider: record.provider, type: record.type })
    this.emit({
      ...context,
      event_type: 'config_change',
      provider: record.provider,
      result: 'credential_added',
      details: { action: 'credential_added', credential_id: id, type: record.type, source: 'api' },
    })
    return { id }
  }

  /**
   * Replace a credential's secret or label in place (the id stays). `token` for an API key;
   * `oauth` fields (merged) for an OAuth credential. Resets its health. Emits `config_change`.
   */
  async update(id: string, patch: CredentialPatch | unknown, context: EventContext = {}): Promise<CredentialSummary> {
    const entry = typeof id === 'string' && ID_PATTERN.test(id) ? this.entries.get(id) : undefined
    if (!entry) throw notFound('no credential with that id')
    const next = applyCredentialPatch(entry.record, patch)
    next.updated_at = new Date().toISOString()
    await this.persist(next)
    entry.unhealthyUntil = 0
    entry.unhealthyReason = undefined
    entry.stale = false
    entry.refresh = newRefreshState()
    this.emit({
      ...context,
      event_type: 'config_change',
      provider: next.provider,
      result: 'credential_updated',
      details: { action: 'credential_updated', credential_id: id, fields: Object.keys(patch as object).sort() },
    })
    return this.summarize(entry, Date.now())
  }

  /**
   * Revoke (`DELETE /v0/management/auths/:provider[/:id]`): every vault credential of the provider,
   * or the one id (a disabled file too). Its file is deleted and it stops being served at once.
   * Static credentials come from the config and are not revocable here. Throws GH_VAULT_NOT_FOUND
   * (404) when nothing matches; a malformed id or provider never touches the disk.
   */
  async revoke(provider: string, id?: string, context: EventContext = {}): Promise<{ revoked: string[] }> {
    if (!isProviderName(provider)) throw notFound('no credentials for that provider')
    let ids: string[]
    if (id !== undefined) {
      if (typeof id !== 'string' || !ID_PATTERN.test(id)) throw notFound('no credential with that id')
      const entry = this.entries.get(id)
      const disabled = this.fileErrors.get(fileNameOf(id))
      if (entry ? entry.record.provider !== provider : !disabled) throw notFound('no credential with that id for that provider')
      ids = [id]
    } else {
      ids = this.sortedEntries()
        .filter((e) => e.record.provider === provider)
        .map((e) => e.id)
      if (ids.length === 0) throw notFound('no credentials for that provider')
    }
    const revoked: string[] = []
    for (const one of ids) {
      await this.unlinkCredential(one)
      revoked.push(one)
      this.emit({
        ...context,
        event_type: 'config_change',
        provider,
        result: 'credential_revoked',
        details: { action: 'credential_revoked', credential_id: one },
      })
    }
    this.config.logger.info(`${PKG}: credentials revoked`, { provider, count: revoked.length })
    return { revoked }
  }

  /** Delete one credential by id, whatever its provider (erasure). Same as revoke(provider, id). */
  async delete(id: string, context: EventContext = {}): Promise<{ revoked: string[] }> {
    if (typeof id !== 'string' || !ID_PATTERN.test(id)) throw notFound('no credential with that id')
    const provider = this.entries.get(id)?.record.provider
    if (provider) return this.revoke(provider, id, context)
    if (!this.fileErrors.has(fileNameOf(id))) throw notFound('no credential with that id')
    await this.unlinkCredential(id)
    this.emit({ ...context, event_type: 'config_change', result: 'credential_revoked', details: { action: 'credential_revoked', credential_id: id } })
    return { revoked: [id] }
  }

  /**
   * Export every vault credential (`GET /v0/management/auths/export`), in a form `add()` takes
   * back. Secrets are masked unless `includeSecrets`; every export is a `credential_access` event
   * saying which.
   */
  export(options: { includeSecrets?: boolean } = {}, context: EventContext = {}): CredentialExport {
    const includeSecrets = options.includeSecrets === true
    const show = (s: string): string => (includeSecrets ? s : maskSecret(s))
    const credentials = this.sortedEntries().map((e): ExportedCredential => {
      const r = e.record
      const out: ExportedCredential = { id: r.id, provider: r.provider, type: r.type, created_at: r.created_at, updated_at: r.updated_at }
      if (r.label !== undefined) out.label = r.label
      if (r.type === 'api_key') out.token = show(r.token!)
      else {
        const o = r.oauth!
        out.oauth = { access_token: show(o.access_token) }
        if (o.refresh_token !== undefined) out.oauth.refresh_token = show(o.refresh_token)
        if (o.expires_at !== undefined) out.oauth.expires_at = o.expires_at
        if (o.token_url !== undefined) out.oauth.token_url = includeSecrets ? o.token_url : maskSecrets(o.token_url)
        if (o.client_id !== undefined) out.oauth.client_id = o.client_id
        if (o.scope !== undefined) out.oauth.scope = o.scope
      }
      return out
    })
    if (includeSecrets) this.config.logger.warn(`${PKG}: credentials exported with secrets`, { count: credentials.length })
    this.emit({
      ...context,
      event_type: 'credential_access',
      result: includeSecrets ? 'exported_with_secrets' : 'exported',
      details: { action: 'export', include_secrets: includeSecrets, count: credentials.length },
    })
    return { version: 1, exported_at: new Date().toISOString(), include_secrets: includeSecrets, credentials }
  }

  /** For `/readyz` and `gatehouse doctor`: directory state, key ids, counts, disabled files. */
  status(): VaultStatus {
    let readable = true
    try {
      ensureSecureDir(this.config.dir, { create: false, allowInsecure: this.config.allowInsecurePermissions })
      fs.readdirSync(this.config.dir)
    } catch {
      readable = false
    }
    const now = Date.now()
    const all = [...this.entries.values(), ...this.statics]
    const unhealthy = all.filter((e) => this.isUnhealthy(e, now)).length
    const keyring = this.config.keyring
    return {
      dir: this.config.dir,
      readable: readable && !this.closed,
      encryption: keyring
        ? { enabled: true, current_key_id: keyring.current.kid, key_ids: keyring.keyIds }
        : { enabled: false, key_ids: [] },
      credentials: { total: all.length + this.fileErrors.size, active: all.length - unhealthy, unhealthy, disabled: this.fileErrors.size },
      providers: Object.fromEntries(
        [...new Set(all.map((e) => e.record.provider))].map((p) => [
          p,
          { usable: this.candidates(p).filter((e) => !this.isUnhealthy(e, now)).length, kept_last_rejections: this.keptLast.get(p) ?? 0 },
        ]),
      ),
      errors: [...this.fileErrors].map(([file, e]) => ({ file, id: e.id, code: e.code, message: e.message })),
    }
  }

  // ---------------------------------------------------------------- key rotation and migration

  /**
   * Re-encrypt every credential file that is not under the current key (all of them with
   * `force`), each atomically, while the vault keeps serving. A file another process rewrote
   * meanwhile is re-read and retried (compare-and-swap), so no newer token is overwritten.
   * Disabled files are never rewritten: they are listed in `failed`.
   * This is what `gatehouse vault rotate-key` runs.
   */
  async reencryptAll(options: { force?: boolean } = {}): Promise<ReencryptResult> {
    const keyring = this.config.keyring
    if (!keyring) {
      throw new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_KEY_MISSING, `${PKG}: re-encryption needs encryption enabled and a key`, 500)
    }
    const result: ReencryptResult = { reencrypted: [], skipped: [], failed: [] }
    for (const id of this.sortedEntries().map((e) => e.id)) {
      let done = false
      for (let attempt = 0; attempt < 5 && !done; attempt++) {
        const entry = this.entries.get(id)
        if (!entry) break
        if (!options.force && entry.encrypted && entry.kid === keyring.current.kid) {
          result.skipped.push(id)
          done = true
          break
        }
        try {
          if (await this.persist(entry.record, entry.sig)) {
            result.reencrypted.push(id)
            done = true
          } else {
            // Changed on disk since it was read: load the newer version, then try again.
            this.rescan(false)
          }
        } catch (err) {
          result.failed.push({ id, file: fileNameOf(id), code: isGatehouseError(err) ? err.code : 'GH_VAULT_WRITE_FAILED', message: (err as Error).message })
          done = true
        }
      }
      if (!done && this.entries.has(id)) {
        result.failed.push({ id, file: fileNameOf(id), code: CredentialVaultErrorCodes.GH_VAULT_WRITE_FAILED, message: `${PKG}: the file kept changing during re-encryption` })
      }
    }
    for (const [file, err] of this.fileErrors) result.failed.push({ id: err.id, file, code: err.code, message: err.message })
    this.config.logger.info(`${PKG}: re-encryption finished`, {
      key_id: keyring.current.kid,
      reencrypted: result.reencrypted.length,
      skipped: result.skipped.length,
      failed: result.failed.length,
    })
    this.emit({
      event_type: 'config_change',
      result: 'vault_reencrypted',
      details: {
        action: 'vault_reencrypted',
        key_id: keyring.current.kid,
        reencrypted: result.reencrypted.length,
        skipped: result.skipped.length,
        failed: result.failed.length,
      },
    })
    return result
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
  async migrate(options: { dryRun?: boolean } = {}): Promise<MigrateResult> {
    if (!this.config.keyring) {
      throw new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_KEY_MISSING, `${PKG}: migration needs encryption enabled and a key`, 500)
    }
    const dryRun = options.dryRun === true
    const result: MigrateResult = { migrated: [], skipped: [], failed: [] }
    this.rescan(false)
    for (const name of fs.readdirSync(this.config.dir).sort()) {
      if (name.startsWith('.') || !name.endsWith('.json')) continue
      if (FILE_PATTERN.test(name)) {
        const id = name.slice(0, -5)
        const entry = this.entries.get(id)
        if (entry?.encrypted) continue
        // A plaintext vault file is loaded only when encryption is off; with it on, the file was
        // refused, and migrate (the operator's own command) is what reads it to encrypt it.
        const record = entry?.record ?? this.readPlaintext(name, id, result)
        if (!record) continue
        if (!dryRun) await this.persist(record)
        result.migrated.push({ file: name, id, provider: record.provider })
        continue
      }
      await this.migrateForeign(name, dryRun, result)
    }
    if (!dryRun) {
      this.emit({
        event_type: 'config_change',
        result: 'vault_migrated',
        details: { action: 'vault_migrated', migrated: result.migrated.length, failed: result.failed.length },
      })
    }
    return result
  }

  /** A refused plaintext vault file, read for migration; undefined (and reported) when it cannot be. */
  private readPlaintext(name: string, id: string, result: MigrateResult): CredentialRecord | undefined {
    if (this.fileErrors.get(name)?.code !== CredentialVaultErrorCodes.GH_VAULT_PLAINTEXT_REFUSED) return undefined
    try {
      const read = readSecureFileSync(join(this.config.dir, name), { allowInsecure: true, maxBytes: this.config.maxFileBytes })
      const decoded = this.decode(id, read.data, true)
      return decoded.encrypted ? undefined : decoded.record
    } catch (err) {
      const code = isGatehouseError(err) ? (err.code as CredentialVaultErrorCode) : CredentialVaultErrorCodes.GH_VAULT_INVALID_FILE
      result.failed.push({ file: name, code, message: isGatehouseError(err) ? err.message : 'the file cannot be read' })
      return undefined
    }
  }

  private async migrateForeign(name: string, dryRun: boolean, result: MigrateResult): Promise<void> {
    const path = join(this.config.dir, name)
    let data: Buffer
    let mtime: Date
    try {
      const st = fs.lstatSync(path)
      const reason = insecureReason(st)
      // A loose mode is what migration fixes; a symlink or someone else's file is never followed.
      if (reason && !reason.startsWith('has mode')) {
        result.skipped.push({ file: name, reason: `the file ${reason}` })
        return
      }
      if (st.size > this.config.maxFileBytes) {
        result.skipped.push({ file: name, reason: 'the file is too large to be a credential' })
        return
      }
      data = readSecureFileSync(path, { allowInsecure: true, maxBytes: this.config.maxFileBytes }).data
      mtime = st.mtime
    } catch (err) {
      result.failed.push({ file: name, code: CredentialVaultErrorCodes.GH_VAULT_INVALID_FILE, message: `the file cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})` })
      return
    }
    let json: unknown
    try {
      json = JSON.parse(data.toString('utf8'))
    } catch {
      result.skipped.push({ file: name, reason: 'not JSON' })
      return
    }
    let body: ReturnType<typeof recordFromPlaintext>
    try {
      body = recordFromPlaintext(json)
    } catch (err) {
      result.failed.push({
        file: name,
        code: CredentialVaultErrorCodes.GH_VAULT_INVALID_CREDENTIAL,
        message: (err as Error).message,
      })
      return
    }
    if (!body) {
      result.skipped.push({ file: name, reason: 'not a credential file' })
      return
    }
    const id = `cred_${sha256(`gatehouse-migrate:${name}`).slice(0, 24)}`
    if (!dryRun) {
      const now = new Date().toISOString()
      await this.persist({ v: 1, id, ...body, created_at: mtime.toISOString(), updated_at: now })
      await removeFile(this.config.dir, name)
    }
    result.migrated.push({ file: name, id, provider: body.provider })
  }

  // ---------------------------------------------------------------- serving

  private sortedEntries(): Entry[] {
    return [...this.entries.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  /** A provider's credentials in serving order (vault ones by id, then the static key), kept until the set changes. */
  private candidates(provider: ProviderName): Entry[] {
    let list = this.candidateCache.get(provider)
    if (list === undefined) {
      list = [...this.sortedEntries().filter((e) => e.record.provider === provider), ...this.statics.filter((e) => e.record.provider === provider)]
      this.candidateCache.set(provider, list)
    }
    return list
  }

  private canRefresh(entry: Entry): boolean {
    const o = entry.record.oauth
    return entry.record.type === 'oauth' && o?.refresh_token !== undefined && o.token_url !== undefined
  }

  /** fresh: use it; expiring: use it and refresh in the background; expired: refresh first. */
  private tokenState(entry: Entry, now: number): 'fresh' | 'expiring' | 'expired' {
    if (entry.record.type !== 'oauth') return 'fresh'
    if (entry.stale) return 'expired'
    const exp = entry.record.oauth!.expires_at
    if (exp === undefined) return 'fresh'
    if (now >= exp) return 'expired'
    return now >= exp - this.config.refreshSkewMs ? 'expiring' : 'fresh'
  }

  private isUnhealthy(entry: Entry, now: number): boolean {
    if (now < entry.unhealthyUntil) return true
    if (entry.record.type !== 'oauth') return false
    const state = this.tokenState(entry, now)
    return state === 'expired' && (!this.canRefresh(entry) || now < entry.refresh.nextAttemptAt)
  }

  /**
   * A credential for `provider`, by round robin over its healthy credentials (vault ones, then the
   * static key). An OAuth token close to expiry is refreshed in the background; an expired one is
   * refreshed first (one refresh per credential however many requests wait). Resolves undefined
   * when none can be used: the caller answers 503.
   */
  acquire(provider: ProviderName): Promise<CredentialLease | undefined> {
    return Promise.resolve(this.acquireNowOrLater(provider))
  }

  /**
   * acquire() without a promise when none is needed: the lease itself (or undefined) when a
   * credential can be used as it is, a promise only when every usable one must be refreshed first.
   * The request path uses this, to spare each request an asynchronous hop.
   */
  acquireNowOrLater(provider: ProviderName): CredentialLease | undefined | Promise<CredentialLease | undefined> {
    if (this.closed) return undefined
    const list = this.candidates(provider)
    if (list.length === 0) return undefined
    const start = this.rr.get(provider) ?? 0
    this.rr.set(provider, (start + 1) % 1_000_000_007)
    const now = Date.now()
    const waiting: Entry[] = []
    for (let i = 0; i < list.length; i++) {
      const entry = list[(start + i) % list.length]!
      if (now < entry.unhealthyUntil) continue
      const state = this.tokenState(entry, now)
      if (state === 'expired') {
        // Start (or join) its refresh; serve another credential meanwhile if one is usable.
        if (entry.refresh.inFlight || (this.canRefresh(entry) && now >= entry.refresh.nextAttemptAt)) {
          void this.refresh(entry)
          waiting.push(entry)
        }
        continue
      }
      if (state === 'expiring' && this.canRefresh(entry) && now >= entry.refresh.nextAttemptAt) void this.refresh(entry)
      return this.lease(entry)
    }
    if (waiting.length === 0) return undefined
    return Promise.any(
      waiting.map((e) => this.refresh(e).then((ok) => (ok && this.isServable(e) ? e : Promise.reject(new Error('refresh failed'))))),
    ).then(
      (entry) => this.lease(entry),
      () => undefined,
    )
  }

  private isServable(entry: Entry): boolean {
    const live = entry.source === 'static' || this.entries.get(entry.id) === entry
    return live && !this.closed && Date.now() >= entry.unhealthyUntil && this.tokenState(entry, Date.now()) !== 'expired'
  }

  private headersOf(entry: Entry): Readonly<Record<string, string>> {
    const r = entry.record
    if (entry.headers?.record !== r) {
      const account = entry.source === 'static' ? this.config.staticAccountHeaders[r.provider] : undefined
      entry.headers = { record: r, value: Object.freeze({ ...upstreamHeadersFor(r.provider, r.type, secretOf(r)), ...account }) }
    }
    return entry.headers.value
  }

  private lease(entry: Entry): CredentialLease {
    entry.lastUsedAt = Date.now()
    const r = entry.record
    let reported = false
    let rejected = false
    return Object.freeze({
      credentialId: entry.id,
      provider: r.provider,
      type: r.type,
      source: entry.source,
      headers: this.headersOf(entry),
      report: (status: number): void => {
        if (reported) return
        reported = true
        entry.lastStatus = status
      },
      reject: (reason: string): void => {
        if (rejected) return
        rejected = true
        this.rejectEntry(entry, reason)
      },
    })
  }

  /**
   * Reject credential `credentialId` on proof that it is bad (see `CredentialLease.reject`): an
   * OAuth token is refreshed first (once per cool-down); otherwise it cools down for
   * `unhealthyCooldown`, unless it is the last usable credential of its provider.
   */
  reject(credentialId: string, reason: string): void {
    const entry = this.entries.get(credentialId) ?? this.statics.find((e) => e.id === credentialId)
    if (entry) this.rejectEntry(entry, reason)
  }

  private rejectEntry(entry: Entry, reason: string): void {
    const now = Date.now()
    if (now < entry.unhealthyUntil) return
    const r = entry.record
    const refreshFirst = this.canRefresh(entry) && !entry.stale && now - entry.refresh.lastSuccessAt > this.config.unhealthyCooldownMs
    if (refreshFirst) {
      entry.stale = true
      this.config.logger.warn(`${PKG}: upstream rejected an OAuth access token; refreshing it before the next use`, {
        credential_id: entry.id,
        provider: r.provider,
        reason,
      })
      this.emit({
        event_type: 'credential_access',
        provider: r.provider,
        result: 'rejected',
        details: { credential_id: entry.id, reason, action: 'refresh' },
      })
      return
    }
    // Never the last usable credential: taking it out would answer every tenant with 503, which
    // is worse than the provider's own refusal; an operator must act, so it is loud instead.
    const others = this.candidates(r.provider).some((e) => e !== entry && !this.isUnhealthy(e, now) && this.isServable(e))
    if (!others) {
      this.keptLast.set(r.provider, (this.keptLast.get(r.provider) ?? 0) + 1)
      this.config.logger.error(`${PKG}: the provider rejected its last usable credential; it stays in service until another is added`, {
        credential_id: entry.id,
        provider: r.provider,
        reason,
      })
      this.emit({
        event_type: 'credential_access',
        provider: r.provider,
        result: 'rejected',
        details: { credential_id: entry.id, reason, action: 'kept_last_credential' },
      })
      return
    }
    entry.unhealthyUntil = now + this.config.unhealthyCooldownMs
    entry.unhealthyReason = `rejected:${reason}`
    this.config.logger.warn(`${PKG}: upstream rejected a credential; skipping it for the cool-down`, {
      credential_id: entry.id,
      provider: r.provider,
      reason,
      cooldown_ms: this.config.unhealthyCooldownMs,
    })
    this.emit({
      event_type: 'credential_access',
      provider: r.provider,
      result: 'rejected',
      details: { credential_id: entry.id, reason, action: 'cooldown', cooldown_ms: this.config.unhealthyCooldownMs },
    })
  }

  /** Seconds until some credential of `provider` may be usable again (for Retry-After), if known. */
  retryAfterSeconds(provider: ProviderName): number | undefined {
    const now = Date.now()
    let soonest = Infinity
    for (const e of this.candidates(provider)) {
      if (now < e.unhealthyUntil) soonest = Math.min(soonest, e.unhealthyUntil)
      else if (e.record.type === 'oauth' && this.canRefresh(e) && now < e.refresh.nextAttemptAt) soonest = Math.min(soonest, e.refresh.nextAttemptAt)
    }
    return Number.isFinite(soonest) ? Math.max(1, Math.ceil((soonest - now) / 1000)) : undefined
  }

  // ---------------------------------------------------------------- OAuth refresh

  /** Refresh now (single-flight per credential). Resolves true on success. */
  refreshCredential(credentialId: string): Promise<boolean> {
    const entry = this.entries.get(credentialId)
    if (!entry || !this.canRefresh(entry)) return Promise.resolve(false)
    return this.refresh(entry)
  }

  private refresh(entry: Entry): Promise<boolean> {
    if (entry.refresh.inFlight) return entry.refresh.inFlight
    const state = entry.refresh
    const run = this.doRefresh(entry).finally(() => {
      state.inFlight = undefined
    })
    state.inFlight = run
    return run
  }

  private async doRefresh(entry: Entry): Promise<boolean> {
    const started = Date.now()
    const oauth = entry.record.oauth!
    const provider = entry.record.provider
    try {
      const params = {
        tokenUrl: oauth.token_url!,
        refreshToken: oauth.refresh_token!,
        timeoutMs: this.config.refreshTimeoutMs,
        ...(oauth.client_id !== undefined ? { clientId: oauth.client_id } : {}),
        ...(oauth.scope !== undefined ? { scope: oauth.scope } : {}),
      }
      const local = async (from: SharedTokens): Promise<SharedTokens> => {
        const r = await requestTokenRefresh({ ...params, ...(from.refresh_token !== undefined ? { refreshToken: from.refresh_token } : {}) })
        return {
          access_token: r.access_token,
          refresh_token: r.refresh_token ?? from.refresh_token!,
          ...(r.expires_in !== undefined ? { expires_at: Date.now() + Math.round(r.expires_in * 1000) } : {}),
        }
      }
      const mine: SharedTokens = { access_token: oauth.access_token, refresh_token: oauth.refresh_token!, ...(oauth.expires_at !== undefined ? { expires_at: oauth.expires_at } : {}) }
      let result: SharedTokens
      let source: 'refreshed' | 'shared' = 'refreshed'
      if (this.coordinator) {
        try {
          const out = await this.coordinator.run(entry.id, mine, local)
          result = out.tokens
          if (!out.refreshedHere) source = 'shared'
        } catch (err) {
          if (err instanceof TokenRefreshError) throw err
          // Redis out of reach: refresh here rather than not at all (the race is the lesser harm).
          this.config.logger.warn(`${PKG}: the cluster's Redis is unreachable; refreshing this OAuth token without coordination`, { credential_id: entry.id })
          result = await local(mine)
        }
      } else result = await local(mine)
      const now = Date.now()
      const current = this.entries.get(entry.id)
      // Revoked, or its tokens replaced (on disk or by update()) while this refresh ran: drop the result.
      if (current !== entry || this.closed || entry.record.oauth?.refresh_token !== oauth.refresh_token) return false
      const next: CredentialRecord = {
        ...entry.record,
        oauth: {
          ...oauth,
          access_token: result.access_token,
          refresh_token: result.refresh_token ?? oauth.refresh_token!,
          ...(result.expires_at !== undefined ? { expires_at: result.expires_at } : {}),
        },
        updated_at: new Date(now).toISOString(),
      }
      if (result.expires_at === undefined) delete next.oauth!.expires_at
      entry.record = next
      entry.stale = false
      entry.refresh.failures = 0
      entry.refresh.nextAttemptAt = 0
      entry.refresh.lastReason = undefined
      entry.refresh.lastSuccessAt = now
      this.emit({
        event_type: 'token_refresh',
        provider,
        result: 'success',
        details: {
          credential_id: entry.id,
          duration_ms: now - started,
          expires_at: next.oauth!.expires_at !== undefined ? new Date(next.oauth!.expires_at).toISOString() : null,
          refresh_token_rotated: result.refresh_token !== undefined && result.refresh_token !== oauth.refresh_token,
          // shared: another gateway of the cluster refreshed it, and this one took its tokens.
          source,
        },
      })
      this.persist(next).catch((err: unknown) => {
        this.config.logger.error(`${PKG}: a refreshed token could not be saved; it is used from memory until restart`, {
          credential_id: entry.id,
          code: isGatehouseError(err) ? err.code : undefined,
        })
        this.emit({
          event_type: 'token_refresh',
          provider,
          result: 'persist_failed',
          details: { credential_id: entry.id, code: isGatehouseError(err) ? err.code : CredentialVaultErrorCodes.GH_VAULT_WRITE_FAILED },
        })
      })
      return true
    } catch (err) {
      const now = Date.now()
      const reason = err instanceof TokenRefreshError ? err.reason : 'error'
      const code = err instanceof TokenRefreshError ? err.code : CredentialVaultErrorCodes.GH_VAULT_REFRESH_FAILED
      const state = entry.refresh
      state.failures += 1
      const wait = Math.min(this.config.refreshBackoffMaxMs, this.config.refreshBackoffMs * 2 ** Math.min(state.failures - 1, 30))
      state.nextAttemptAt = now + wait
      state.lastReason = reason
      this.config.logger.error(`${PKG}: OAuth refresh failed; next attempt after the backoff`, {
        credential_id: entry.id,
        provider,
        reason,
        failures: state.failures,
        retry_in_ms: wait,
      })
      this.emit({
        event_type: 'token_refresh',
        provider,
        result: 'failure',
        details: { credential_id: entry.id, code, reason, duration_ms: now - started, failures: state.failures, retry_in_ms: wait },
      })
      return false
    }
  }

  // ---------------------------------------------------------------- lifecycle

  private emit(input: SecurityEventInput): void {
    emitSecurityEvent(this.config.onEvent, input, (err) =>
      this.config.logger.error(`${PKG}: an onEvent handler threw`, { error: err instanceof Error ? err.message : String(err) }),
    )
  }

  /** Printing or serialising a vault shows its state, never a key or token. */
  toJSON(): unknown {
    return { dir: this.config.dir, credentials: this.list().length, closed: this.closed }
  }

  [inspect.custom](): string {
    return `CredentialVault { dir: ${JSON.stringify(this.config.dir)}, credentials: ${this.entries.size + this.statics.length}, disabled: ${this.fileErrors.size} }`
  }

  /** Stop watching and rescanning, wait for pending writes. Idempotent. */
  async shutdown(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.watcher?.close()
    this.watcher = undefined
    if (this.rescanTimer) clearInterval(this.rescanTimer)
    if (this.debounceTimer) clearTimeout(this.debounceTimer)
    await Promise.allSettled([...this.writeQueues.values()])
  }
}

/** Create a vault: validates options (throws GatehouseConfigError), secures the directory, loads every file, starts hot reload. */
export function createCredentialVault(options: CredentialVaultOptions): CredentialVault {
  return new CredentialVault(options)
}

/**
 * `gatehouse vault rotate-key`: re-encrypt every file in `dir` under `encryption.key`, reading
 * them with `encryption.previousKeys`. A running gateway configured with both keys keeps serving
 * throughout and picks the rewritten files up by hot reload.
 */
export async function rotateKey(options: CredentialVaultOptions & { force?: boolean | undefined }): Promise<ReencryptResult> {
  const { force, ...rest } = options
  const vault = new CredentialVault({ ...rest, watch: false, rescanInterval: 0 })
  try {
    return await vault.reencryptAll(force === undefined ? {} : { force })
  } finally {
    await vault.shutdown()
  }
}

/** `gatehouse vault migrate`: encrypt the plaintext credential files in `dir` (see `CredentialVault.migrate`). */
export async function migrate(options: CredentialVaultOptions & { dryRun?: boolean | undefined }): Promise<MigrateResult> {
  const { dryRun, ...rest } = options
  const vault = new CredentialVault({ ...rest, watch: false, rescanInterval: 0 })
  try {
    return await vault.migrate(dryRun === undefined ? {} : { dryRun })
  } finally {
    await vault.shutdown()
  }
}
