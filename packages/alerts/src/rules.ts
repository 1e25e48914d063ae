import { GatehouseConfigError } from '@gatehouse/core'
import { parseCondition, type AlertMetric } from './conditions'
import { AlertsErrorCodes } from './errors'
import { PKG, durationMs, type AlertAction, type AlertRule } from './options'

/** A validated alert rule. */
export interface ResolvedAlertRule {
  /** Stable id used in store keys: the name, lower-cased, non-alphanumerics as `-`. */
  readonly id: string
  readonly name: string
  readonly condition: string
  readonly metric: AlertMetric
  readonly operator: '>' | '>='
  readonly threshold: number
  /** Occurrences in the window at which the rule fires. */
  readonly min: number
  readonly windowMs: number
  readonly action: AlertAction
  /** block_ip only. */
  readonly ttlSeconds: number
}

const slug = (name: string): string =>
  name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 64) || 'rule'

function alertError(index: number, rule: { name?: unknown }, message: string): GatehouseConfigError {
  return new GatehouseConfigError(
    AlertsErrorCodes.GH_ALERTS_INVALID_RULE,
    `${PKG}: alerts[${index}] (${JSON.stringify(rule.name)}): ${message}`,
  )
}

const MAX_WINDOW_MS = 7 * 24 * 3_600_000

/** The rule's window in ms, 1s to 7d, or a sentence saying what is wrong. */
function windowOf(rule: AlertRule): number | string {
  let windowMs: number
  try {
    windowMs = durationMs(rule.duration, 'duration')
  } catch {
    return `duration must be a duration such as "5m" or "30s" (got ${JSON.stringify(rule.duration)})`
  }
  if (windowMs < 1000 || windowMs > MAX_WINDOW_MS) return `duration must be between 1s and 7d (got ${JSON.stringify(rule.duration)})`
  return windowMs
}

/** The block_ip entry's lifetime in seconds (at least 1), or a sentence saying what is wrong. */
function ttlOf(rule: AlertRule): number | string {
  if (rule.ttl !== undefined && rule.action !== 'block_ip') return 'ttl applies to block_ip only'
  let ttlMs: number
  try {
    ttlMs = durationMs(rule.ttl ?? '1h', 'ttl')
  } catch {
    return `ttl must be a duration such as "1h" (got ${JSON.stringify(rule.ttl)})`
  }
  if (ttlMs < 1000) return `ttl must be at least 1s (got ${JSON.stringify(rule.ttl)})`
  return Math.ceil(ttlMs / 1000)
}

/** What is wrong with the rule's action, given what the engine has to act with; undefined when nothing. */
function actionProblem(rule: AlertRule, metric: AlertMetric, available: { webhook: boolean; onBlockIp: boolean }): string | undefined {
  if (rule.action === 'notify_admin' && !available.webhook) return 'action notify_admin needs notify.webhookUrl'
  if (rule.action !== 'block_ip') return undefined
  if (!available.onBlockIp) return 'action block_ip needs an onBlockIp callback (the ip-filter runtime denylist)'
  if (metric === 'credential_rejections' || metric === 'credentials_disabled') {
    // The provider's verdict on the operator's credential, or a refused credential file, says nothing about the caller.
    return `action block_ip cannot count ${metric}: they measure the provider credential, not the caller; use notify_admin`
  }
  return undefined
}

/**
 * Validate alert rules: the condition's syntax and metric, the duration, the action and what it
 * needs. Throws GH_ALERTS_INVALID_RULE naming the rule. Exported so a config check can run it
 * without starting anything.
 */
export function resolveAlertRules(
  rules: readonly AlertRule[],
  available: { webhook: boolean; onBlockIp: boolean },
): ResolvedAlertRule[] {
  const ids = new Map<string, string>()
  return rules.map((rule, i) => {
    const parsed = parseCondition(rule.condition)
    if (typeof parsed === 'string') throw alertError(i, rule, parsed)
    const windowMs = windowOf(rule)
    if (typeof windowMs === 'string') throw alertError(i, rule, windowMs)
    const problem = actionProblem(rule, parsed.metric, available)
    if (problem !== undefined) throw alertError(i, rule, problem)
    const ttlSeconds = ttlOf(rule)
    if (typeof ttlSeconds === 'string') throw alertError(i, rule, ttlSeconds)
    const id = slug(rule.name)
    const clash = ids.get(id)
    if (clash !== undefined) throw alertError(i, rule, `its name is the same as ${JSON.stringify(clash)}'s; names must differ`)
    ids.set(id, rule.name)
    return Object.freeze({
      id,
      name: rule.name,
      condition: rule.condition,
      metric: parsed.metric,
      operator: parsed.operator,
      threshold: parsed.threshold,
      min: parsed.min,
      windowMs,
      action: rule.action,
      ttlSeconds,
    })
  })
}
