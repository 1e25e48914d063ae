export { CredentialVaultErrorCodes, type CredentialVaultErrorCode } from './errors'
export {
  credentialVaultOptionsSchema,
  resolveCredentialVaultConfig,
  type CredentialVaultConfig,
  type CredentialVaultOptions,
  type VaultEncryptionOptions,
} from './options'
export {
  CLIENT_CREDENTIAL_HEADERS,
  credentialInjectionOptionsSchema,
  resolveCredentialInjectionConfig,
  type CredentialInjectionConfig,
  type CredentialInjectionOptions,
} from './injection-options'
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
export { CredentialVault, createCredentialVault, migrate, rotateKey } from './vault'
export type {
  CredentialExport,
  CredentialLease,
  CredentialSource,
  CredentialSummary,
  EventContext,
  ExportedCredential,
  MigrateResult,
  ReencryptResult,
  VaultStatus,
} from './types'
export { credentialFiles, plaintextCredentialFiles } from './inspect'
export type { VaultClusterOptions } from './cluster'
export { moveRecordsToRedis, type MoveToRedisResult } from './records-migrate'
export { applyUpstreamCredential, credentialInjection, reportUpstreamStatus, upstreamCredentialOf } from './middleware'
