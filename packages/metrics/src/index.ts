export { createMetrics, type GatehouseMetrics, type RequestObservation } from './metrics'
export { startMetricsServer, type MetricsServer } from './server'
export { createAlertEngine, resolveAlertRules, type AlertEngine, type AlertEngineStats, type ResolvedAlertRule } from './alerts'
export { MemoryAlertStore, RedisAlertStore, type RedisEvalClient } from './stores'
export { ALERT_METRICS, parseCondition, type AlertMetric, type ParsedCondition } from './conditions'
export { BoundedLabel, OTHER, UNKNOWN } from './labels'
export {
  ALERT_ACTIONS,
  alertEngineOptionsSchema,
  alertRuleSchema,
  isRateLimitViolation,
  metricsOptionsSchema,
  metricsServerOptionsSchema,
  type AlertAction,
  type AlertEngineOptions,
  type AlertHit,
  type AlertRule,
  type AlertStore,
  type BlockRequest,
  type MetricsOptions,
  type MetricsServerOptions,
  type NotifyOptions,
} from './options'
export { MetricsErrorCodes, type MetricsErrorCode } from './errors'
