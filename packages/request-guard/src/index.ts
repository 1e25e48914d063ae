export { requestGuard, type RequestGuardLocals } from './middleware'
export { forwardBody } from './forward'
export {
  requestGuardOptionsSchema,
  resolveRequestGuardConfig,
  type RequestGuardOptions,
  type RequestGuardConfig,
  type ProviderGuardOptions,
} from './options'
export { RequestGuardErrorCodes, type RequestGuardErrorCode } from './errors'
export { requestBodySchemas } from './schemas'
export {
  DEFAULT_BLOCKED_RULES,
  type SecretAction,
  type SecretPolicy,
  type SecretsOptions,
} from './secrets-options'
