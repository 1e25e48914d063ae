import { createHmac } from 'node:crypto'
import { loadOrCreateSecretFile } from '@gatehouse/core'
import { loadOrCreateSalt } from '@gatehouse/client-auth'
import type { GatehouseConfig } from '../config/types'
import type { AuthPaths } from '../auth-paths'

/** Every secret the config holds, so the masker can find them in any text. */
export function configSecrets(c: GatehouseConfig): string[] {
  const out = [c.auth.key_salt, c.auth.encryption.key, ...(c.auth.encryption.previous_keys ?? []), c.management.secret_key, c.notify.webhook_url, c.logging.audit.key, ...c.auth.honeytokens, c.store.url, c.storage.url]
  for (const p of Object.values(c.providers)) out.push(p?.api_key)
  return out.filter((s): s is string => typeof s === 'string' && s.length >= 8)
}

export interface GeneratedSecrets {
  salt: string
  encryptionKey: string | undefined
  auditKey: string
  /**
   * The quota file's HMAC key, derived from the audit key: an edit of quota.json made outside the
   * gateway is refused (rate-limit's quotaFileKey). A changed audit key reads as such an edit.
   */
  quotaKey: Buffer
}

/** Secrets the gateway keeps in files of the auth directory when the config does not give them. */
export function resolveGeneratedSecrets(config: GatehouseConfig, paths: AuthPaths): GeneratedSecrets {
  const auditKey = config.logging.audit.key ?? loadOrCreateSecretFile(paths.auditKeyFile)
  return {
    salt: config.auth.key_salt ?? loadOrCreateSalt(paths.dir),
    encryptionKey: config.auth.encryption.enabled
      ? (config.auth.encryption.key ?? loadOrCreateSecretFile(paths.encryptionKeyFile))
      : undefined,
    auditKey,
    quotaKey: createHmac('sha256', auditKey).update('gatehouse quota file').digest(),
  }
}
