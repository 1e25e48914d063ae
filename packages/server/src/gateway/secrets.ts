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
}

/** Secrets the gateway keeps in files of the auth directory when the config does not give them. */
export function resolveGeneratedSecrets(config: GatehouseConfig, paths: AuthPaths): GeneratedSecrets {
  return {
    salt: config.auth.key_salt ?? loadOrCreateSalt(paths.dir),
    encryptionKey: config.auth.encryption.enabled
      ? (config.auth.encryption.key ?? loadOrCreateSecretFile(paths.encryptionKeyFile))
      : undefined,
    auditKey: config.logging.audit.key ?? loadOrCreateSecretFile(paths.auditKeyFile),
  }
}
