import { GatehouseConfigError } from '@gatehouse/core'
import { AuditLogErrorCodes } from './errors'

const PKG = '@gatehouse/audit-log'

const MIN_KEY_BYTES = 32

/**
 * Turn the audit key option into bytes, or throw GH_AUDIT_INVALID_KEY. The key is never quoted.
 * Exported for `verifyAuditLog`, which takes the same forms.
 */
export function resolveAuditKey(key: unknown, name = 'key'): Buffer {
  let bytes: Buffer | undefined
  if (Buffer.isBuffer(key)) bytes = Buffer.from(key)
  else if (typeof key === 'string') bytes = Buffer.from(key, 'utf8')
  if (!bytes) {
    throw new GatehouseConfigError(
      AuditLogErrorCodes.GH_AUDIT_INVALID_KEY,
      `${PKG}: ${name} is required: a string or Buffer of at least ${MIN_KEY_BYTES} bytes (generate one with \`openssl rand -hex 32\`)`,
    )
  }
  if (bytes.length < MIN_KEY_BYTES) {
    throw new GatehouseConfigError(
      AuditLogErrorCodes.GH_AUDIT_INVALID_KEY,
      `${PKG}: ${name} is too short (${bytes.length} bytes); it must be at least ${MIN_KEY_BYTES} bytes`,
    )
  }
  return bytes
}

/** The audit key in every text form it could leak in, so the masker removes it wherever it appears. */
export function keyForms(key: Buffer): string[] {
  return [key.toString('utf8'), key.toString('hex'), key.toString('base64'), key.toString('base64url')]
}
