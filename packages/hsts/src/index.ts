export { hsts, SECURITY_HEADER_NAMES } from './middleware'
export { httpsOnly } from './https-only'
export {
  hstsOptionsSchema,
  httpsOnlyOptionsSchema,
  resolveHstsConfig,
  resolveHttpsOnlyConfig,
  parseHstsHeader,
  parseCspHeader,
  PRELOAD_MIN_MAX_AGE,
} from './options'
export type { HstsOptions, HstsConfig, CspObject, HttpsOnlyOptions, HttpsOnlyConfig } from './options'
export { HstsErrorCodes } from './errors'
export type { HstsErrorCode } from './errors'
