import { GatehouseError, isGatehouseError, ReplicatedHash } from '@gatehouse/core'
import type { VaultClusterOptions } from './cluster'
import { decodeCredentialFile, encodeCredentialFile, sha256, stableStringify } from './codec'
import { CredentialVaultErrorCodes, PKG, type CredentialVaultErrorCode } from './errors'
import { ID_PATTERN, fileNameOf, type CredentialRecord } from './record'
import { newEntry, resetHealth, type Entry, type VaultState } from './state'

/** The Redis hash of the credential records: field = credential id, value = its envelope (JSON). */
export const recordsKey = (prefix: string | undefined): string => `${prefix ?? 'gatehouse:'}vault:records`

/** One record of the hash read: what it holds, or why it cannot be used. */
export type ReadRecord = { id: string; record: CredentialRecord; kid: string | undefined } | { id: string; code: CredentialVaultErrorCode; message: string }

/**
 * A value of the hash → record. Only an envelope under one of the vault's keys, bound to this id,
 * is taken: plaintext, another key, a record moved from another id or an altered one is refused.
 */
export function readRecord(state: Pick<VaultState, 'config'>, id: string, raw: string): ReadRecord {
  if (!ID_PATTERN.test(id)) return { id, code: CredentialVaultErrorCodes.GH_VAULT_INVALID_FILE, message: 'the field is not a credential id' }
  try {
    // encryptionEnabled true: a plaintext value is refused, whatever this vault's own setting.
    const { record, kid } = decodeCredentialFile({ keyring: state.config.keyring, encryptionEnabled: true }, id, Buffer.from(raw, 'utf8'))
    return { id, record, kid }
  } catch (err) {
    const code = isGatehouseError(err) ? (err.code as CredentialVaultErrorCode) : CredentialVaultErrorCodes.GH_VAULT_INVALID_FILE
    return { id, code, message: isGatehouseError(err) ? err.message : 'the record cannot be read' }
  }
}

/** Record → the hash's value: the same envelope the file store writes (under the current key, bound to the id). */
export const encodeRecord = (state: Pick<VaultState, 'config'>, record: CredentialRecord): string =>
  encodeCredentialFile(state.config.keyring, record).toString('utf8').trimEnd()

/**
 * Cluster mode's credential records: kept in one Redis hash that every gateway copies (core's
 * ReplicatedHash: pub/sub with a version, and a resync every second that heals a lost message).
 * Adds, updates, refreshed tokens and revocations are written there and applied by every gateway;
 * nothing is read from or written to the credential directory. While Redis is unreachable the
 * last copy keeps serving and every change is refused (GH_CORE_SHARED_STATE_UNAVAILABLE, 503).
 * Stands in for the file store and writer (the same `persist`/`unlink` the management and the
 * refresh call).
 */
export class RedisRecordStore {
  private readonly hash: ReplicatedHash
  private readonly writes = new Set<Promise<unknown>>()
  /** Changes this gateway is making (value hashes, `-<id>` for a removal): their events come from the management, not from here. */
  private readonly mine = new Set<string>()
  private loaded = false
  /** Each record's value as last read, for a compare-and-set against it. */
  private raws: ReadonlyMap<string, string> = new Map()

  constructor(
    private readonly state: VaultState,
    cluster: VaultClusterOptions,
  ) {
    this.hash = new ReplicatedHash({
      client: cluster.client,
      key: recordsKey(cluster.prefix),
      label: `${PKG}: shared credential records`,
      logger: state.config.logger,
      ...(cluster.resyncMs !== undefined ? { resyncMs: cluster.resyncMs } : {}),
      onChange: (entries) => this.apply(entries),
    })
  }

  /** Read the first copy and follow changes. Rejects (503) while Redis cannot be read; the watch keeps trying. */
  start(): Promise<void> {
    return this.hash.start()
  }

  get version(): number {
    return this.hash.version
  }

  /** A copy was read, and confirmed current within `ms`. */
  freshWithin(ms: number): boolean {
    return this.hash.freshWithin(ms)
  }

  /** Whether a first copy was read (before it, no vault credential is served). */
  get ready(): boolean {
    return this.loaded
  }

  isPending(): boolean {
    return false
  }

  /**
   * Write a record for every gateway; resolves once this gateway serves it. With `sig` (the hash of
   * the value it was read from), the write is a compare-and-set: false, and nothing written, when
   * another gateway changed the record since (a refreshed token is never overwritten by an older one).
   */
  persist(record: CredentialRecord, sig?: string): Promise<boolean> {
    return this.track(async () => {
      this.open()
      let expected: Record<string, string> | undefined
      if (sig !== undefined) {
        const read = this.raws.get(record.id)
        if (read === undefined || sha256(read) !== sig) return false
        expected = { [record.id]: read }
      }
      const value = encodeRecord(this.state, record)
      let written = true
      await this.mark(sha256(value), async () => {
        written = await this.hash.update({ [record.id]: value }, expected)
      })
      return written
    })
  }

  /** Read the shared records again now (after a compare-and-set found one changed). */
  resync(): Promise<void> {
    return this.hash.readOnce()
  }

  /** Remove a record for every gateway; resolves once this gateway stopped serving it. */
  unlink(id: string): Promise<boolean> {
    return this.track(async () => {
      this.open()
      await this.mark(`-${id}`, async () => void (await this.hash.update({ [id]: null })))
      this.state.deleteEntry(id)
      this.state.fileErrors.delete(fileNameOf(id))
      return true
    })
  }

  async drain(): Promise<void> {
    await Promise.allSettled([...this.writes])
  }

  async close(): Promise<void> {
    await this.drain()
    await this.hash.close()
  }

  private open(): void {
    if (this.state.closed) throw new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_SHUT_DOWN, `${PKG}: the vault is shut down`, 503)
  }

  private async mark(token: string, fn: () => Promise<void>): Promise<void> {
    this.mine.add(token)
    try {
      await fn()
    } finally {
      this.mine.delete(token)
    }
  }

  private track<T>(fn: () => Promise<T>): Promise<T> {
    const run = fn()
    const settled = run.catch(() => undefined)
    this.writes.add(settled)
    void settled.then(() => this.writes.delete(settled))
    return run
  }

  /** A new copy of the hash: memory made to match it, each record read alone (a bad one disables that credential only). */
  private apply(entries: ReadonlyMap<string, string>): void {
    const { state } = this
    const initial = !this.loaded
    this.loaded = true
    this.raws = entries
    const seen = new Set<string>()
    for (const [id, raw] of entries) {
      seen.add(id)
      const hash = sha256(raw)
      if (state.entries.get(id)?.hash === hash || state.fileErrors.get(fileNameOf(id))?.sig === hash) continue
      const read = readRecord(state, id, raw)
      if ('record' in read) this.take(read.record, read.kid, hash, initial || this.mine.has(hash))
      else this.refuse(read, hash)
    }
    for (const [id, entry] of state.entries) {
      if (seen.has(id)) continue
      state.deleteEntry(id)
      if (!this.mine.has(`-${id}`)) this.changed(entry, 'credential_removed')
    }
    for (const [name, err] of [...state.fileErrors]) if (!seen.has(err.id)) state.fileErrors.delete(name)
  }

  private take(record: CredentialRecord, kid: string | undefined, hash: string, quiet: boolean): void {
    const { state } = this
    state.fileErrors.delete(fileNameOf(record.id))
    const existing = state.entries.get(record.id)
    if (!existing) {
      const entry = newEntry({ id: record.id, source: 'vault', file: undefined, record, encrypted: true, kid, sig: hash, hash })
      state.setEntry(entry)
      if (!quiet) this.changed(entry, 'credential_added')
      return
    }
    Object.assign(existing, { sig: hash, hash, kid, encrypted: true })
    // This gateway's own write coming back, or another's re-encryption: nothing changed for serving.
    if (stableStringify(existing.record) === stableStringify(record)) return
    // A new secret (updated, or tokens another gateway refreshed) starts with a clean health.
    state.setRecord(existing, record)
    resetHealth(existing)
    if (!quiet) this.changed(existing, 'credential_changed')
  }

  private refuse(read: { id: string; code: CredentialVaultErrorCode; message: string }, hash: string): void {
    const { state } = this
    const existing = state.entries.get(read.id)
    if (existing) state.deleteEntry(read.id)
    state.fileErrors.set(fileNameOf(read.id), { id: read.id, code: read.code, message: read.message, sig: hash })
    state.config.logger.error(`${PKG}: a credential record in Redis is refused: ${read.message}`, { credential_id: read.id, code: read.code })
    state.emit({
      event_type: 'security_violation',
      ...(existing ? { provider: existing.record.provider } : {}),
      result: 'credential_disabled',
      details: { action: 'credential_disabled', credential_id: read.id, source: 'redis', code: read.code, reason: read.message },
    })
  }

  private changed(entry: Entry, action: 'credential_added' | 'credential_changed' | 'credential_removed'): void {
    this.state.config.logger.info(`${PKG}: ${action.replace('_', ' ')} by another gateway`, { credential_id: entry.id, provider: entry.record.provider })
    this.state.emit({ event_type: 'config_change', provider: entry.record.provider, result: action, details: { action, credential_id: entry.id, source: 'redis' } })
  }
}

