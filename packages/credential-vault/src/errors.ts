import { GatehouseConfigError, GatehouseError } from '@gatehouse/core'

/** The prefix of every message this package writes. */
export const PKG = '@gatehouse/credential-vault'

/**
 * The codes @gatehouse/credential-vault raises. Each one is documented in the README's Errors
 * table (a test checks that). No message built with these codes ever contains a secret: keys,
 * tokens and file contents are described, never quoted.
 */
export const CredentialVaultErrorCodes = {
  /** An option has the wrong type or value. */
  GH_VAULT_INVALID_OPTIONS: 'GH_VAULT_INVALID_OPTIONS',
  /** An option name is not known (a typo). */
  GH_VAULT_UNKNOWN_OPTION: 'GH_VAULT_UNKNOWN_OPTION',
  /** A factory was passed to app.use() without being called. */
  GH_VAULT_NOT_CALLED: 'GH_VAULT_NOT_CALLED',
  /** An encryption key is not 32 bytes (raw, 64 hex characters or base64). */
  GH_VAULT_INVALID_KEY: 'GH_VAULT_INVALID_KEY',
  /** Encryption is enabled and no key is configured. */
  GH_VAULT_KEY_MISSING: 'GH_VAULT_KEY_MISSING',
  /** The credential directory is a symlink, not a directory, or owned by another user. */
  GH_VAULT_INSECURE_DIR: 'GH_VAULT_INSECURE_DIR',
  /** A credential file is group/world accessible, a symlink, or owned by another user. */
  GH_VAULT_INSECURE_FILE: 'GH_VAULT_INSECURE_FILE',
  /** A file failed authentication: wrong key, altered, truncated or moved from another credential. */
  GH_VAULT_DECRYPT_FAILED: 'GH_VAULT_DECRYPT_FAILED',
  /** A file was encrypted under a key id that is not configured. */
  GH_VAULT_UNKNOWN_KEY_ID: 'GH_VAULT_UNKNOWN_KEY_ID',
  /** Encryption is on and a credential file is plaintext: refused, never served (it may have been planted). */
  GH_VAULT_PLAINTEXT_REFUSED: 'GH_VAULT_PLAINTEXT_REFUSED',
  /** A file is not valid JSON, not a valid envelope or record, or too large. */
  GH_VAULT_INVALID_FILE: 'GH_VAULT_INVALID_FILE',
  /** Writing or removing a credential file failed. */
  GH_VAULT_WRITE_FAILED: 'GH_VAULT_WRITE_FAILED',
  /** A credential given to add/update is invalid (HTTP 400). */
  GH_VAULT_INVALID_CREDENTIAL: 'GH_VAULT_INVALID_CREDENTIAL',
  /** An OAuth token_url is not https (plain http is allowed to loopback only) (HTTP 400). */
  GH_VAULT_INSECURE_TOKEN_URL: 'GH_VAULT_INSECURE_TOKEN_URL',
  /** No credential with that id (or for that provider) exists (HTTP 404). */
  GH_VAULT_NOT_FOUND: 'GH_VAULT_NOT_FOUND',
  /** No healthy upstream credential is available for the request's provider (HTTP 503). */
  GH_VAULT_NO_CREDENTIAL: 'GH_VAULT_NO_CREDENTIAL',
  /** The OAuth token endpoint refused the refresh or answered badly. */
  GH_VAULT_REFRESH_FAILED: 'GH_VAULT_REFRESH_FAILED',
  /** The OAuth token endpoint did not answer within refreshTimeout. */
  GH_VAULT_REFRESH_TIMEOUT: 'GH_VAULT_REFRESH_TIMEOUT',
  /** The vault was used after shutdown(). */
  GH_VAULT_SHUT_DOWN: 'GH_VAULT_SHUT_DOWN',
} as const

export type CredentialVaultErrorCode = keyof typeof CredentialVaultErrorCodes

/** A bad option, named (never its value when it is a secret). */
export function configError(message: string, code: CredentialVaultErrorCode = 'GH_VAULT_INVALID_OPTIONS'): GatehouseConfigError {
  return new GatehouseConfigError(CredentialVaultErrorCodes[code], `${PKG}: ${message}`)
}

/** A management call named a credential or provider the vault does not hold (HTTP 404). */
export function notFound(message: string): GatehouseError {
  return new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_NOT_FOUND, `${PKG}: ${message}`, 404)
}

/** Writing or removing a credential file failed; the message names the errno code, never a path's content. */
export function writeFailed(what: string, err: unknown): GatehouseError {
  return new GatehouseError(
    CredentialVaultErrorCodes.GH_VAULT_WRITE_FAILED,
    `${PKG}: ${what} failed (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    500,
    { cause: err },
  )
}
