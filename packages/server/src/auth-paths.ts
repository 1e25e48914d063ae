import { join, resolve as resolvePath } from 'node:path'
import type { GatehouseConfig } from './config/types'

/**
 * The auth directory and the files the gateway keeps in it, resolved one way for the gateway and
 * every CLI command (relative `auth.dir` against the working directory).
 */
export interface AuthPaths {
  dir: string
  /** Client keys (hashes and scopes), when they are not in Redis. */
  keyFile: string
  /** The audit log's HMAC key, when logging.audit.key is not set. */
  auditKeyFile: string
  /** The vault's encryption key, when auth.encryption.key is not set. */
  encryptionKeyFile: string
  /** Monthly quota usage of the memory rate-limit store. */
  quotaFile: string
}

export function authPaths(config: GatehouseConfig, cwd: string = process.cwd()): AuthPaths {
  const dir = resolvePath(cwd, config.auth.dir)
  return {
    dir,
    keyFile: join(dir, 'client-keys.json'),
    auditKeyFile: join(dir, '.audit-key'),
    encryptionKeyFile: join(dir, '.encryption-key'),
    quotaFile: join(dir, 'quota.json'),
  }
}
