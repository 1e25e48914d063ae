import * as fs from 'node:fs'
import { join } from 'node:path'
import { GatehouseError, isGatehouseError } from '@gatehouse/core'
import { encodeCredentialFile, sha256, signatureOf } from './codec'
import { CredentialVaultErrorCodes, PKG, writeFailed } from './errors'
import type { PermissionGuard } from './permissions'
import { fileNameOf, type CredentialRecord } from './record'
import { removeFile, writeFileAtomic } from './secure-fs'
import { newEntry, type VaultState } from './state'

/**
 * Every write of a credential file: atomic (temporary file, fsync, rename, directory fsync), 0600,
 * encrypted under the current key when encryption is on, and memory made to match. Writes of one
 * credential run one after another; while one runs, a rescan leaves that credential alone.
 */
export class CredentialWriter {
  private readonly queues = new Map<string, Promise<unknown>>()
  private readonly pending = new Set<string>()

  constructor(
    private readonly state: VaultState,
    private readonly guard: PermissionGuard,
  ) {}

  /** A write of this credential is under way: its file is ours to change, not the rescan's to read. */
  isPending(id: string): boolean {
    return this.pending.has(id)
  }

  /**
   * Write a record and make memory match. With `expectSig`, the write is a compare-and-swap against
   * the file as it was read (another process may have rewritten it meanwhile): false means it
   * changed and nothing was written.
   */
  persist(record: CredentialRecord, expectSig?: string): Promise<boolean> {
    if (this.state.closed) return Promise.reject(new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_SHUT_DOWN, `${PKG}: the vault is shut down`, 503))
    return this.exclusive(record.id, async () => {
      try {
        this.guard.checkDir(true)
        const data = encodeCredentialFile(this.state.config.keyring, record)
        if (!(await this.writeFile(record.id, data, expectSig))) return false
        this.remember(record, data)
        return true
      } catch (err) {
        if (isGatehouseError(err)) throw err
        throw writeFailed('writing a credential file', err)
      }
    })
  }

  /** Delete a credential's file and stop serving it at once. */
  unlink(id: string): Promise<boolean> {
    return this.exclusive(id, async () => {
      try {
        this.state.deleteEntry(id)
        this.state.fileErrors.delete(fileNameOf(id))
        return await removeFile(this.state.config.dir, fileNameOf(id))
      } catch (err) {
        throw writeFailed('removing a credential file', err)
      }
    })
  }

  /** Wait for every queued write (shutdown). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.queues.values()])
  }

  private async writeFile(id: string, data: Buffer, expectSig: string | undefined): Promise<boolean> {
    const name = fileNameOf(id)
    const path = join(this.state.config.dir, name)
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
    return writeFileAtomic(this.state.config.dir, name, data, cas)
  }

  /** Memory after a write: the entry gets the file's new signature, and the record unless a newer one is there. */
  private remember(record: CredentialRecord, data: Buffer): void {
    const { state } = this
    const name = fileNameOf(record.id)
    const st = fs.lstatSync(join(state.config.dir, name))
    const keyring = state.config.keyring
    const fields = { sig: signatureOf(st), hash: sha256(data), encrypted: keyring !== undefined, kid: keyring?.current.kid }
    const entry = state.entries.get(record.id)
    if (entry) {
      Object.assign(entry, fields)
      // A re-encryption queued before a refresh must not bring the older tokens back into memory.
      if (record.updated_at >= entry.record.updated_at) state.setRecord(entry, record)
    } else {
      state.setEntry(newEntry({ id: record.id, source: 'vault', file: name, record, ...fields }))
    }
    state.fileErrors.delete(name)
  }

  /** Run `fn` after every earlier write of the same credential, marked pending while it runs. */
  private exclusive<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const guarded = async (): Promise<T> => {
      this.pending.add(id)
      try {
        return await fn()
      } finally {
        this.pending.delete(id)
      }
    }
    const prev = this.queues.get(id) ?? Promise.resolve()
    const run = prev.then(guarded, guarded)
    const tail = run.catch(() => undefined)
    this.queues.set(id, tail)
    void tail.then(() => {
      if (this.queues.get(id) === tail) this.queues.delete(id)
    })
    return run
  }
}
