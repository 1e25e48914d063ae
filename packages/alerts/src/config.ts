import { isLogger, isRateLimitViolation, noopLogger, type Logger, type SecurityEvent } from '@gatehouse/core'
import { invalid, neverBlockMatcher, resolveAlertRaw, type AlertEngineOptions, type AlertStore } from './options'
import { resolveAlertRules, type ResolvedAlertRule } from './rules'
import { resolveWebhook, type WebhookTarget } from './webhook'

/** The resolved, frozen options of one engine. */
export interface AlertEngineConfig {
  readonly rules: readonly ResolvedAlertRule[]
  readonly webhook: WebhookTarget | undefined
  readonly onBlockIp: AlertEngineOptions['onBlockIp']
  readonly store: AlertStore | undefined
  readonly isRateLimitViolation: (event: SecurityEvent) => boolean
  /** True for loopback and every `neverBlock` address and range. */
  readonly neverBlocked: (ip: string) => boolean
  readonly logger: Logger
}

const isStore = (store: unknown): store is AlertStore =>
  store !== null &&
  typeof store === 'object' &&
  typeof (store as AlertStore).hit === 'function' &&
  typeof (store as AlertStore).shutdown === 'function'

/**
 * Validate the options of `createAlertEngine()`: the schema, the function-valued options by hand,
 * the webhook and every rule. Throws GH_ALERTS_INVALID_OPTIONS, GH_ALERTS_UNKNOWN_OPTION or
 * GH_ALERTS_INVALID_RULE; never changes `options`.
 */
export function resolveAlertEngineConfig(options: AlertEngineOptions): AlertEngineConfig {
  const raw = resolveAlertRaw(options)
  if (raw.onBlockIp !== undefined && typeof raw.onBlockIp !== 'function') throw invalid('onBlockIp must be a function')
  if (raw.isRateLimitViolation !== undefined && typeof raw.isRateLimitViolation !== 'function') {
    throw invalid('isRateLimitViolation must be a function')
  }
  if (raw.logger !== undefined && !isLogger(raw.logger)) throw invalid('logger must have error, warn, info and debug methods')
  if (raw.store !== undefined && !isStore(raw.store)) {
    throw invalid('store must have hit() and shutdown() (a MemoryAlertStore or RedisAlertStore)')
  }
  const webhook = resolveWebhook(raw.notify)
  const rules = resolveAlertRules(raw.rules ?? [], { webhook: webhook !== undefined, onBlockIp: raw.onBlockIp !== undefined })
  return Object.freeze({
    rules: Object.freeze(rules),
    webhook,
    onBlockIp: raw.onBlockIp,
    store: raw.store,
    isRateLimitViolation: raw.isRateLimitViolation ?? isRateLimitViolation,
    neverBlocked: neverBlockMatcher(raw.neverBlock ?? []),
    logger: raw.logger ?? noopLogger,
  })
}
