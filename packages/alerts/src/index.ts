export { createAlertEngine, type AlertEngine } from './engine'
export { resolveAlertEngineConfig } from './config'
export type { AlertEngineStats } from './actions'
export { resolveAlertRules, type ResolvedAlertRule } from './rules'
export { MemoryAlertStore, RedisAlertStore, type RedisEvalClient } from './stores'
export { ALERT_METRICS, parseCondition, type AlertMetric, type ParsedCondition } from './conditions'
export {
  ALERT_ACTIONS,
  alertEngineOptionsSchema,
  alertRuleSchema,
  type AlertAction,
  type AlertEngineOptions,
  type AlertHit,
  type AlertRule,
  type AlertStore,
  type BlockRequest,
  type NotifyOptions,
} from './options'
export { AlertsErrorCodes, type AlertsErrorCode } from './errors'
