export { CredentialVaultErrorCodes, type CredentialVaultErrorCode } from './errors'
export {
  CLIENT_CREDENTIAL_HEADERS,
  credentialInjectionOptionsSchema,
  credentialVaultOptionsSchema,
  resolveCredentialInjectionConfig,
  resolveCredentialVaultConfig,
  type CredentialInjectionConfig,
  type CredentialInjectionOptions,
  type CredentialSource,
  type CredentialVaultConfig,
  type CredentialVaultOptions,
  type VaultEncryptionOptions,
} from './options'
export { Keyring, generateEncryptionKey, keyIdOf, parseEncryptionKey, type EncryptionKeyInput } from './keyring'
export { ENVELOPE_ALG, type Envelope } from './envelope'
export {
  ANTHROPIC_OAUTH_BETA,
  upstreamHeadersFor,
  validateCredentialInput,
  type CredentialInput,
  type CredentialPatch,
  type CredentialRecord,
  type CredentialType,
  type OAuthTokens,
} from './record'
export { TokenRefreshError, requestTokenRefresh, type TokenRefreshRequest, type TokenRefreshResult } from './oauth'
export {
  CredentialVault,
  createCredentialVault,
  migrate,
  rotateKey,
  type CredentialExport,
  type CredentialLease,
  type CredentialSummary,
  type EventContext,
  type ExportedCredential,
  type MigrateResult,
  type ReencryptResult,
  type VaultStatus,
} from './vault'
export { plaintextCredentialFiles } from './inspect'
export { applyUpstreamCredential, credentialInjection, reportUpstreamStatus, upstreamCredentialOf } from './middleware'
