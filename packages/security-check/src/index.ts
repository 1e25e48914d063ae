export { checkPermissions } from './permissions'
export type { PermissionFinding, PermissionFindingKind, PermissionsResult } from './permissions'
export { scanSecrets, scanText, writeSecretsBaseline } from './secrets/scan'
export type { ScanSecretsResult, SecretFinding } from './secrets/scan'
export type { SkippedCounts } from './secrets/files'
export type { Baseline, BaselineEntry } from './secrets/baseline'
export { SECRET_RULES, SECRET_RULE_IDS } from './secrets/rules'
export type { SecretRule } from './secrets/rules'
export { ALLOW_MARKER, ALLOW_NEXT_LINE_MARKER } from './secrets/engine'
export { checkTls } from './tls'
export type { CertificateInfo, TlsFinding, TlsFindingKind, TlsResult } from './tls'
export { runAll } from './all'
export type { AllResult, StepStatus } from './all'
export type { AuditResult, VulnerabilityCounts } from './audit'
export { installHook, HOOK_MARKER } from './hook'
export type { InstallHookResult } from './hook'
export { toSarif, formatSecretsJson, formatSecretsSarif, formatSecretsText } from './format'
export { main, EXIT_OK, EXIT_FINDINGS, EXIT_USAGE } from './main'
export type { CliIo } from './main'
export { SecurityCheckErrorCodes } from './errors'
export type { SecurityCheckErrorCode } from './errors'
export type {
  CheckPermissionsOptions,
  CheckTlsOptions,
  InstallHookOptions,
  RunAllOptions,
  ScanSecretsOptions,
} from './options'
