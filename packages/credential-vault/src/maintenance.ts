import * as fs from 'node:fs'
import { join } from 'node:path'
import { GatehouseError, isGatehouseError, maskSecret, maskSecrets } from '@gatehouse/core'
import { decodeCredentialFile, sha256 } from './codec'
import { CredentialVaultErrorCodes, PKG, type CredentialVaultErrorCode } from './errors'
import type { Keyring } from './keyring'
import { FILE_PATTERN, fileNameOf, recordFromPlaintext, type CredentialRecord } from './record'
import { insecureReason, readSecureFileSync, removeFile } from './secure-fs'
import type { VaultState } from './state'
import type { CredentialExport, EventContext, ExportedCredential, MigrateResult, ReencryptResult } from './types'
import type { CredentialWriter } from './writer'

/** Whole-vault operations: export, re-encryption under a new key, and migration of plaintext files. */
export class VaultMaintenance {
  constructor(
    private readonly state: VaultState,
    /** Re-reads the credentials (the directory, or the shared records in cluster mode). */
    private readonly store: { rescan(strict: boolean): void | Promise<void> },
    private readonly writer: Pick<CredentialWriter, 'persist'>,
    /** Cluster mode: re-seals the OAuth tokens the gateways share in Redis under the current key. */
    private readonly sharedTokens?: { reseal(ids: readonly string[]): Promise<ReencryptResult> },
  ) {}

  export(options: { includeSecrets?: boolean }, context: EventContext): CredentialExport {
    const includeSecrets = options.includeSecrets === true
    const credentials = this.state.sortedEntries().map((e) => exportRecord(e.record, includeSecrets))
    if (includeSecrets) this.state.config.logger.warn(`${PKG}: credentials exported with secrets`, { count: credentials.length })
    this.state.emit({
      ...context,
      event_type: 'credential_access',
      result: includeSecrets ? 'exported_with_secrets' : 'exported',
      details: { action: 'export', include_secrets: includeSecrets, count: credentials.length },
    })
    return { version: 1, exported_at: new Date().toISOString(), include_secrets: includeSecrets, credentials }
  }

  async reencryptAll(options: { force?: boolean }): Promise<ReencryptResult> {
    const keyring = this.state.config.keyring
    if (!keyring) {
      throw new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_KEY_MISSING, `${PKG}: re-encryption needs encryption enabled and a key`, 500)
    }
    const result: ReencryptResult = { reencrypted: [], skipped: [], failed: [] }
    for (const id of this.state.sortedEntries().map((e) => e.id)) await this.reencryptOne(id, keyring, options.force === true, result)
    for (const [file, err] of this.state.fileErrors) result.failed.push({ id: err.id, file, code: err.code, message: err.message })
    if (this.sharedTokens) {
      const oauth = this.state.sortedEntries().filter((e) => e.record.type === 'oauth').map((e) => e.id)
      const tokens = await this.sharedTokens.reseal(oauth)
      result.tokens = { reencrypted: tokens.reencrypted, skipped: tokens.skipped }
      result.failed.push(...tokens.failed)
    }
    const counts = { key_id: keyring.current.kid, reencrypted: result.reencrypted.length, skipped: result.skipped.length, failed: result.failed.length }
    this.state.config.logger.info(`${PKG}: re-encryption finished`, counts)
    this.state.emit({ event_type: 'config_change', result: 'vault_reencrypted', details: { action: 'vault_reencrypted', ...counts } })
    return result
  }

  async migrate(options: { dryRun?: boolean }): Promise<MigrateResult> {
    const { config } = this.state
    if (!config.keyring) {
      throw new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_KEY_MISSING, `${PKG}: migration needs encryption enabled and a key`, 500)
    }
    const dryRun = options.dryRun === true
    const result: MigrateResult = { migrated: [], skipped: [], failed: [] }
    this.store.rescan(false)
    for (const name of fs.readdirSync(config.dir).sort()) {
      if (name.startsWith('.') || !name.endsWith('.json')) continue
      if (FILE_PATTERN.test(name)) await this.migrateVaultFile(name, dryRun, result)
      else await this.migrateForeign(name, dryRun, result)
    }
    if (!dryRun) {
      this.state.emit({
        event_type: 'config_change',
        result: 'vault_migrated',
        details: { action: 'vault_migrated', migrated: result.migrated.length, failed: result.failed.length },
      })
    }
    return result
  }

  /** One credential under the current key; a file another process rewrote meanwhile is re-read and retried. */
  private async reencryptOne(id: string, keyring: Keyring, force: boolean, result: ReencryptResult): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const entry = this.state.entries.get(id)
      if (!entry) return
      if (!force && entry.encrypted && entry.kid === keyring.current.kid) {
        result.skipped.push(id)
        return
      }
      try {
        if (await this.writer.persist(entry.record, entry.sig)) {
          result.reencrypted.push(id)
          return
        }
        // Changed since it was read (on disk, or by another gateway): load the newer version, then try again.
        await this.store.rescan(false)
      } catch (err) {
        result.failed.push({ id, file: fileNameOf(id), code: isGatehouseError(err) ? err.code : 'GH_VAULT_WRITE_FAILED', message: (err as Error).message })
        return
      }
    }
    if (this.state.entries.has(id)) {
      result.failed.push({ id, file: fileNameOf(id), code: CredentialVaultErrorCodes.GH_VAULT_WRITE_FAILED, message: `${PKG}: the file kept changing during re-encryption` })
    }
  }

  private async migrateVaultFile(name: string, dryRun: boolean, result: MigrateResult): Promise<void> {
    const id = name.slice(0, -5)
    const entry = this.state.entries.get(id)
    if (entry?.encrypted) return
    // A plaintext vault file is loaded only when encryption is off; with it on, the file was
    // refused, and migrate (the operator's own command) is what reads it to encrypt it.
    const record = entry?.record ?? this.readPlaintext(name, id, result)
    if (!record) return
    if (!dryRun) await this.writer.persist(record)
    result.migrated.push({ file: name, id, provider: record.provider })
  }

  /** A refused plaintext vault file, read for migration; undefined (and reported) when it cannot be. */
  private readPlaintext(name: string, id: string, result: MigrateResult): CredentialRecord | undefined {
    const { config, fileErrors } = this.state
    if (fileErrors.get(name)?.code !== CredentialVaultErrorCodes.GH_VAULT_PLAINTEXT_REFUSED) return undefined
    try {
      const read = readSecureFileSync(join(config.dir, name), { allowInsecure: true, maxBytes: config.maxFileBytes })
      const decoded = decodeCredentialFile(config, id, read.data, true)
      return decoded.encrypted ? undefined : decoded.record
    } catch (err) {
      const code = isGatehouseError(err) ? (err.code as CredentialVaultErrorCode) : CredentialVaultErrorCodes.GH_VAULT_INVALID_FILE
      result.failed.push({ file: name, code, message: isGatehouseError(err) ? err.message : 'the file cannot be read' })
      return undefined
    }
  }

  /** Another `*.json` file: made a vault file when it holds a credential, the original removed once the copy is durable. */
  private async migrateForeign(name: string, dryRun: boolean, result: MigrateResult): Promise<void> {
    const file = this.readForeign(name, result)
    if (!file) return
    let json: unknown
    try {
      json = JSON.parse(file.data.toString('utf8'))
    } catch {
      result.skipped.push({ file: name, reason: 'not JSON' })
      return
    }
    let body: ReturnType<typeof recordFromPlaintext>
    try {
      body = recordFromPlaintext(json)
    } catch (err) {
      result.failed.push({ file: name, code: CredentialVaultErrorCodes.GH_VAULT_INVALID_CREDENTIAL, message: (err as Error).message })
      return
    }
    if (!body) {
      result.skipped.push({ file: name, reason: 'not a credential file' })
      return
    }
    // Derived from the original name, so a re-run after a crash converges on the same id.
    const id = `cred_${sha256(`gatehouse-migrate:${name}`).slice(0, 24)}`
    if (!dryRun) {
      const now = new Date().toISOString()
      await this.writer.persist({ v: 1, id, ...body, created_at: file.mtime.toISOString(), updated_at: now })
      await removeFile(this.state.config.dir, name)
    }
    result.migrated.push({ file: name, id, provider: body.provider })
  }

  /** A foreign file's bytes, or undefined (skipped or failed, with the reason) when it is not to be read. */
  private readForeign(name: string, result: MigrateResult): { data: Buffer; mtime: Date } | undefined {
    const { config } = this.state
    const path = join(config.dir, name)
    try {
      const st = fs.lstatSync(path)
      const reason = insecureReason(st)
      // A loose mode is what migration fixes; a symlink or someone else's file is never followed.
      if (reason && !reason.startsWith('has mode')) {
        result.skipped.push({ file: name, reason: `the file ${reason}` })
        return undefined
      }
      if (st.size > config.maxFileBytes) {
        result.skipped.push({ file: name, reason: 'the file is too large to be a credential' })
        return undefined
      }
      return { data: readSecureFileSync(path, { allowInsecure: true, maxBytes: config.maxFileBytes }).data, mtime: st.mtime }
    } catch (err) {
      result.failed.push({ file: name, code: CredentialVaultErrorCodes.GH_VAULT_INVALID_FILE, message: `the file cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})` })
      return undefined
    }
  }
}

/** A record as an export shows it: secrets masked unless `includeSecrets`; re-importable with `add()`. */
function exportRecord(r: CredentialRecord, includeSecrets: boolean): ExportedCredential {
  const show = (s: string): string => (includeSecrets ? s : maskSecret(s))
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
}
