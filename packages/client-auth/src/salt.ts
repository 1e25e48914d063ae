import { join } from 'node:path'
import { GatehouseConfigError, loadOrCreateSecretFile } from '@gatehouse/core'

/** File name of the generated salt inside the auth directory. */
export const SALT_FILE = '.client-key-salt'

/**
 * The salt from the auth directory, created (32 random bytes, hex, mode 0600) on first use.
 * Used when `auth.key_salt` is not configured. Returns the hex string.
 */
export function loadOrCreateSalt(authDir: string): string {
  try {
    return loadOrCreateSecretFile(join(authDir, SALT_FILE))
  } catch (err) {
    throw new GatehouseConfigError('GH_AUTH_SALT_INVALID', `@gatehouse/client-auth: salt file ${(err as Error).message}`)
  }
}
