import * as fs from 'node:fs'
import { PKG } from './errors'
import { ensureSecureDir } from './secure-fs'
import type { VaultState } from './state'

/**
 * The 0700/0600 rules as the vault applies them: the directory is checked (and a loosened mode set
 * back to 0700) on start, on every rescan and before every write; what `allowInsecurePermissions`
 * lets through is reported once per file and reason.
 */
export class PermissionGuard {
  /** File name ('.' for the directory) → the insecure reason last reported for it. */
  private readonly reported = new Map<string, string>()

  constructor(private readonly state: VaultState) {}

  /** Check the directory, creating it 0700 with `create`. Throws when it is unsafe or unusable. */
  checkDir(create: boolean): void {
    const { config } = this.state
    const check = ensureSecureDir(config.dir, { create, allowInsecure: config.allowInsecurePermissions })
    if (check.fixed) {
      config.logger.warn(`${PKG}: ${check.fixed}`)
      this.state.emit({ event_type: 'config_change', result: 'permissions_fixed', details: { action: 'permissions_fixed', reason: check.fixed } })
    }
    if (check.insecure) this.reportInsecure('.', check.insecure)
  }

  /** A credential file accepted although insecure (allowInsecurePermissions): reported once per reason. */
  reportInsecureFile(name: string, id: string, reason: string): void {
    this.reportInsecure(name, reason, { id, name })
  }

  /** The directory is safe and can be listed now (what `status().readable` says). */
  readable(): boolean {
    const { config } = this.state
    try {
      ensureSecureDir(config.dir, { create: false, allowInsecure: config.allowInsecurePermissions })
      fs.readdirSync(config.dir)
      return true
    } catch {
      return false
    }
  }

  private reportInsecure(key: string, reason: string, file?: { id: string; name: string }): void {
    if (this.reported.get(key) === reason) return
    this.reported.set(key, reason)
    this.state.config.logger.warn(`${PKG}: ${reason} (accepted: allowInsecurePermissions is on)`, file ? { credential_id: file.id } : undefined)
    this.state.emit({
      event_type: 'security_violation',
      result: 'insecure_permissions_allowed',
      details: file ? { credential_id: file.id, file: file.name, reason } : { reason },
    })
  }
}
