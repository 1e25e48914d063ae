export { createAuditLogger, type AuditLogger, type AuditLogStats } from './audit-logger'
export { accessLog, maskRequestUrl } from './middleware'
export { createAppLogger } from './app-logger'
export {
  verifyAuditLog,
  type AuditVerifyFailure,
  type AuditVerifyProblem,
  type AuditVerifyResult,
  type VerifyAuditLogOptions,
} from './verify'
export { listAuditFiles } from './files'
export {
  APP_LOG_LEVELS,
  accessLogOptionsSchema,
  appLoggerOptionsSchema,
  auditLogOptionsSchema,
  resolveAuditLogConfig,
  type AccessLogOptions,
  type AppLogLevel,
  type AppLoggerOptions,
  type AuditLogConfig,
  type AuditLogOptions,
} from './options'
export { AuditLogErrorCodes, type AuditLogErrorCode } from './errors'
