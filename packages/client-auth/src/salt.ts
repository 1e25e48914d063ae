import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { GatehouseConfigError, insecureFileReason, writeFileAtomicSync } from '@gatehouse/core'

/** File name of the generated salt inside the auth directory. */
export const SALT_FILE = '.client-key-salt'

/**
 * The salt from the auth directory, created (32 random bytes, hex, mode 0600) on first use.
 * Used when `auth.key_salt` is not configured. Returns the hex string.
 */
export function loadOrCreateSalt(authDir: string): string {
  const file = join(authDir, SALT_FILE)
  if (!existsSync(authDir)) mkdirSync(authDir, { recursive: true, mode: 0o700 })
  if (!existsSync(file)) {
    writeFileAtomicSync(file, `${randomBytes(32).toString('hex')}\n`, 0o600)
  }
  const reason = insecureFileReason(file)
  if (reason) throw new GatehouseConfigError('GH_AUTH_SALT_INVALID', `@gatehouse/client-auth: salt file ${file} ${reason}`)
  const value = readFileSync(file, 'utf8').trim()
  if (!/^[0-9a-f]{64}$/.test(value)) {
    throw new GatehouseConfigError('GH_AUTH_SALT_INVALID', `@gatehouse/client-auth: salt file ${file} is not 64 hex characters`)
  }
  return value
}
