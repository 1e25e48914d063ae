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
