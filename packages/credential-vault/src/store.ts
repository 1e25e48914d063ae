import * as fs from 'node:fs'
import { join } from 'node:path'
import { GatehouseConfigError, isGatehouseError } from '@gatehouse/core'
import { decodeCredentialFile, sha256, signatureOf, stableStringify, type DecodedFile } from './codec'
import { CredentialVaultErrorCodes, PKG, type CredentialVaultErrorCode } from './errors'
import type { PermissionGuard } from './permissions'
import { FILE_PATTERN } from './record'
import { readSecureFileSync, removeStaleTempFiles } from './secure-fs'
import { newEntry, resetHealth, type Entry, type VaultState } from './state'
import type { CredentialWriter } from './writer'

const STALE_TEMP_MS = 60_000

/**
 * Memory kept in line with the credential directory. A file that fails (insecure, wrong key,
 * altered, truncated, plaintext while encryption is on) disables that credential only, with an
 * error event; nothing is ever written by a read.
 */
export class CredentialStore {
  private dirProblem: string | undefined

  constructor(
    private readonly state: VaultState,
    private readonly guard: PermissionGuard,
    private readonly writer: Pick<CredentialWriter, 'isPending'>,
  ) {}

  /** Secure the directory (a GatehouseConfigError when it cannot be), clear old temporary files, load every file. */
  open(): void {
    const { config } = this.state
    try {
      this.guard.checkDir(config.createDir)
    } catch (err) {
      const code = isGatehouseError(err) ? err.code : CredentialVaultErrorCodes.GH_VAULT_INSECURE_DIR
      throw new GatehouseConfigError(code, `${PKG}: dir: ${(err as Error).message}`, { cause: err })
    }
    try {
      removeStaleTempFiles(config.dir, fs.readdirSync(config.dir), STALE_TEMP_MS, Date.now())
    } catch {
      // the rescan below reports an unreadable directory
    }
    this.rescan(true)
  }

  /**
   * Bring memory in line with the directory: load new and changed files, drop removed ones. Runs
   * on fs.watch events, on the timer, and on demand (`reload()`).
   */
  rescan(initial: boolean): void {
    if (this.state.closed) return
    const names = this.listDir()
    if (names === undefined) return
    const seen = new Set<string>()
    for (const name of names.sort()) {
      if (!FILE_PATTERN.test(name)) continue
      seen.add(name)
      const id = name.slice(0, -'.json'.length)
      if (this.writer.isPending(id)) continue
      let st: fs.Stats
      try {
        st = fs.lstatSync(join(this.state.config.dir, name))
      } catch {
        seen.delete(name)
        continue
      }
      const sig = signatureOf(st)
      if (this.state.entries.get(id)?.sig === sig || this.state.fileErrors.get(name)?.sig === sig) continue
      this.loadFile(name, id, sig, initial)
    }
    this.dropRemoved(seen)
  }

  /** The directory's names, or undefined (reported once per problem) when it cannot be read. */
  private listDir(): string[] | undefined {
    const { config } = this.state
    try {
      this.guard.checkDir(false)
      const names = fs.readdirSync(config.dir)
      this.dirProblem = undefined
      return names
    } catch (err) {
      const message = (err as Error).message
      if (this.dirProblem !== message) {
        this.dirProblem = message
        config.logger.error(`${PKG}: the credential directory cannot be read; keeping the credentials already loaded`, { reason: message })
        this.state.emit({
          event_type: 'security_violation',
          result: 'vault_dir_unreadable',
          details: { code: isGatehouseError(err) ? err.code : CredentialVaultErrorCodes.GH_VAULT_INSECURE_DIR, reason: message },
        })
      }
      return undefined
    }
  }

  private dropRemoved(seen: ReadonlySet<string>): void {
    const { state } = this
    for (const [id, entry] of state.entries) {
      if (seen.has(entry.file!) || this.writer.isPending(id)) continue
      state.deleteEntry(id)
      state.config.logger.info(`${PKG}: credential removed from disk`, { credential_id: id, provider: entry.record.provider })
      this.emitDiskChange(entry, 'credential_removed')
    }
    for (const name of [...state.fileErrors.keys()]) if (!seen.has(name)) state.fileErrors.delete(name)
  }

  private loadFile(name: string, id: string, sig: string, initial: boolean): void {
    const { state } = this
    const existing = state.entries.get(id)
    try {
      const read = readSecureFileSync(join(state.config.dir, name), {
        allowInsecure: state.config.allowInsecurePermissions,
        maxBytes: state.config.maxFileBytes,
      })
      const hash = sha256(read.data)
      if (read.insecure) this.guard.reportInsecureFile(name, id, read.insecure)
      if (existing && existing.hash === hash) {
        existing.sig = sig
        return
      }
      const decoded = decodeCredentialFile(state.config, id, read.data)
      state.fileErrors.delete(name)
      if (existing) this.replace(existing, decoded, sig, hash)
      else this.add(name, decoded, sig, hash, initial)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      this.disable(name, id, sig, existing, err)
    }
  }

  /** A file rewritten on disk: taken silently when the record is the same (a key rotation elsewhere). */
  private replace(existing: Entry, { record, encrypted, kid }: DecodedFile, sig: string, hash: string): void {
    const same = stableStringify(existing.record) === stableStringify(record)
    existing.sig = sig
    existing.hash = hash
    existing.encrypted = encrypted
    existing.kid = kid
    if (same) return
    this.state.setRecord(existing, record)
    resetHealth(existing)
    this.state.config.logger.info(`${PKG}: credential changed on disk`, { credential_id: existing.id, provider: record.provider })
    this.emitDiskChange(existing, 'credential_changed')
  }

  private add(name: string, { record, encrypted, kid }: DecodedFile, sig: string, hash: string, initial: boolean): void {
    const entry = newEntry({ id: record.id, source: 'vault', file: name, record, encrypted, kid, sig, hash })
    this.state.setEntry(entry)
    if (initial) return
    this.state.config.logger.info(`${PKG}: credential loaded from disk`, { credential_id: entry.id, provider: record.provider })
    this.emitDiskChange(entry, 'credential_added')
  }

  private disable(name: string, id: string, sig: string, existing: Entry | undefined, err: unknown): void {
    const { state } = this
    const code: CredentialVaultErrorCode = isGatehouseError(err) ? (err.code as CredentialVaultErrorCode) : CredentialVaultErrorCodes.GH_VAULT_INVALID_FILE
    const message = isGatehouseError(err) ? err.message : `the file cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`
    if (existing) state.deleteEntry(id)
    state.fileErrors.set(name, { id, code, message, sig })
    state.config.logger.error(`${PKG}: credential disabled: ${message}`, { credential_id: id, code })
    state.emit({
      event_type: 'security_violation',
      ...(existing ? { provider: existing.record.provider } : {}),
      result: 'credential_disabled',
      details: { action: 'credential_disabled', credential_id: id, file: name, code, reason: message },
    })
  }

  private emitDiskChange(entry: Entry, action: 'credential_added' | 'credential_changed' | 'credential_removed'): void {
    this.state.emit({
      event_type: 'config_change',
      provider: entry.record.provider,
      result: action,
      details: { action, credential_id: entry.id, source: 'disk' },
    })
  }
}
