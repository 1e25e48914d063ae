export { createStorageSink, type StorageSink, type StorageSinkStats } from './sink'
export {
  MIGRATIONS,
  SCHEMA_VERSION,
  grantsSql,
  migrate,
  runRetention,
  schemaVersion,
  type GrantsOptions,
  type MigrateResult,
  type Migration,
  type RetentionResult,
} from './migrate'
export { MONITORING_QUERIES, type MonitoringQueryName } from './queries'
export { resolveDatabaseUrl, type DatabaseTarget, type ResolvedDatabaseUrl } from './url'
export { resolveStorageSinkConfig, storageSinkOptionsSchema, type StorageSinkConfig, type StorageSinkOptions } from './options'
export { StorageErrorCodes, type StorageErrorCode } from './errors'
