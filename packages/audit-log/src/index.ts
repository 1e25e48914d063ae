export { createAuditLogger, type AuditLogger, type AuditLogStats } from './audit-logger'
export {
  auditSinkOptionsSchema,
  httpsSinkOptionsSchema,
  syslogSinkOptionsSchema,
  type AuditSinkDrop,
  type AuditSinkOptions,
  type HttpsSinkOptions,
  type SyslogSinkOptions,
} from './sinks/options'
export type { AuditSinkStats } from './sinks/base'
export { findCheckpoints, type AuditCheckpoint } from './checkpoint'
export { accessLog, maskRequestUrl } from './middleware'
export {
  verifyAuditLog,
  type AuditVerifyFailure,
  type AuditVerifyProblem,
  type AuditVerifyResult,
  type VerifyAuditLogOptions,
} from './verify'
export { listAuditFiles } from './files'
export { accessLogOptionsSchema, type AccessLogOptions } from './access-options'
export {
  auditLogOptionsSchema,
  resolveAuditLogConfig,
  type AuditLogConfig,
  type AuditCheckpointOptions,
  type AuditLogOptions,
  type AuditRetentionOptions,
} from './options'
export { AuditLogErrorCodes, type AuditLogErrorCode } from './errors'
