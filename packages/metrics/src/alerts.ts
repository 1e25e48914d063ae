import { isIP } from 'node:net'
import {
  GatehouseConfigError,
  createMasker,
  isLogger,
  isLoopback,
  noopLogger,
  normalizeIp,
  type SecurityEvent,
  type SecurityEventHandler,
} from '@gatehouse/core'
import { parseCondition, type AlertMetric } from './conditions'
import { MetricsErrorCodes } from './errors'
import {
  PKG,
  durationMs,
  invalid,
  isRateLimitViolation as defaultIsRateLimitViolation,
  isSharedLimitRefusal,
  neverBlockMatcher,
  resolveAlertRaw,
  type AlertAction,
  type AlertEngineOptions,
  type AlertRule,
  type AlertStore,
  type BlockRequest,
} from './options'
import { MemoryAlertStore } from './stores'
import { postWebhook, webhookOrigin, type WebhookTarget } from './webhook'

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

export interface AlertEngineStats {
  /** Rule firings (at most one per rule, subject and window). */
  fired: number
  /** Webhook messages delivered. */
  delivered: number
  /** Webhook messages given up on after every retry. */
  deliveryFailures: number
  /** onBlockIp calls that completed. */
  blocked: number
  /** block_ip firings for an address that is never blocked (loopback, `neverBlock`): alert only. */
  spared: number
  /** Failed store calls (events not counted). */
  storeErrors: number
}

/** Alert rules evaluated in-process over sliding windows. */
export interface AlertEngine {
  readonly rules: readonly ResolvedAlertRule[]
  /** Feed one security event. Returns at once; the window update and any action run in the background. Never throws. */
  readonly recordEvent: SecurityEventHandler
  /** Resolves when every window update, delivery and block call started so far has settled. */
  idle(): Promise<void>
  /** Stop: later events are ignored, retries are cut short, the store is shut down. */
  shutdown(): Promise<void>
  stats(): AlertEngineStats
}

const slug = (name: string): string =>
  name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 64) || 'rule'

function formatWindow(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0) return `${ms / 60_000}m`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}

function alertError(index: number, rule: { name?: unknown }, message: string): GatehouseConfigError {
  return new GatehouseConfigError(
    MetricsErrorCodes.GH_METRICS_INVALID_ALERT,
    `${PKG}: alerts[${index}] (${JSON.stringify(rule.name)}): ${message}`,
  )
}

const MAX_WINDOW_MS = 7 * 24 * 3_600_000

/**
 * Validate alert rules: the condition's syntax and metric, the duration, the action and what it
 * needs. Throws GH_METRICS_INVALID_ALERT naming the rule. Exported so a config check can run it
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
    let windowMs: number
    try {
      windowMs = durationMs(rule.duration, 'duration')
    } catch {
      throw alertError(i, rule, `duration must be a duration such as "5m" or "30s" (got ${JSON.stringify(rule.duration)})`)
    }
    if (windowMs < 1000 || windowMs > MAX_WINDOW_MS) {
      throw alertError(i, rule, `duration must be between 1s and 7d (got ${JSON.stringify(rule.duration)})`)
    }
    if (rule.action === 'notify_admin' && !available.webhook) {
      throw alertError(i, rule, 'action notify_admin needs notify.webhookUrl')
    }
    if (rule.action === 'block_ip' && !available.onBlockIp) {
      throw alertError(i, rule, 'action block_ip needs an onBlockIp callback (the ip-filter runtime denylist)')
    }
    if (rule.action === 'block_ip' && (parsed.metric === 'credential_rejections' || parsed.metric === 'credentials_disabled')) {
      // The provider's verdict on the operator's credential, or a refused credential file, says nothing about the caller.
      throw alertError(i, rule, `action block_ip cannot count ${parsed.metric}: they measure the provider credential, not the caller; use notify_admin`)
    }
    if (rule.ttl !== undefined && rule.action !== 'block_ip') throw alertError(i, rule, 'ttl applies to block_ip only')
    let ttlMs: number
    try {
      ttlMs = durationMs(rule.ttl ?? '1h', 'ttl')
    } catch {
      throw alertError(i, rule, `ttl must be a duration such as "1h" (got ${JSON.stringify(rule.ttl)})`)
    }
    if (ttlMs < 1000) throw alertError(i, rule, `ttl must be at least 1s (got ${JSON.stringify(rule.ttl)})`)
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
      ttlSeconds: Math.ceil(ttlMs / 1000),
    })
  })
}

function resolveWebhook(notify: AlertEngineOptions['notify']): WebhookTarget | undefined {
  const url = notify?.webhookUrl
  if (url === undefined || url === '') return undefined
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw invalid('notify.webhookUrl must be an http(s) URL (the value is a secret and is not shown)')
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw invalid('notify.webhookUrl must be an http(s) URL (the value is a secret and is not shown)')
  }
  return {
    url,
    retries: notify?.retries ?? 4,
    retryDelayMs: durationMs(notify?.retryDelay ?? '500ms', 'notify.retryDelay'),
    timeoutMs: durationMs(notify?.timeout ?? '5s', 'notify.timeout'),
  }
}

/**
 * Evaluate `alerts:` rules over sliding windows of security events. `notify_admin` posts
 * `{"text": …}` to the webhook (global window, retried with backoff off the request path);
 * `block_ip` calls `onBlockIp({ ip, ttlSeconds, reason, rule })` for the offending address
 * (one window per address). A rule fires once per window: after it fires for a subject it stays
 * quiet for that subject until `duration` has passed.
 */
export function createAlertEngine(options: AlertEngineOptions = {}): AlertEngine {
  const raw = resolveAlertRaw(options)
  if (raw.onBlockIp !== undefined && typeof raw.onBlockIp !== 'function') throw invalid('onBlockIp must be a function')
  if (raw.isRateLimitViolation !== undefined && typeof raw.isRateLimitViolation !== 'function') {
    throw invalid('isRateLimitViolation must be a function')
  }
  if (raw.logger !== undefined && !isLogger(raw.logger)) throw invalid('logger must have error, warn, info and debug methods')
  const store = raw.store
  if (
    store !== undefined &&
    (store === null || typeof store !== 'object' || typeof store.hit !== 'function' || typeof store.shutdown !== 'function')
  ) {
    throw invalid('store must have hit() and shutdown() (a MemoryAlertStore or RedisAlertStore)')
  }
  const webhook = resolveWebhook(raw.notify)
  const rules = Object.freeze(
    resolveAlertRules(raw.rules ?? [], { webhook: webhook !== undefined, onBlockIp: raw.onBlockIp !== undefined }),
  )
  const logger = raw.logger ?? noopLogger
  const onBlockIp = raw.onBlockIp
  const isRateLimit = raw.isRateLimitViolation ?? defaultIsRateLimitViolation
  const windows: AlertStore = store ?? new MemoryAlertStore()
  const masker = createMasker({ knownSecrets: webhook ? [webhook.url] : [] })
  if (webhook && new URL(webhook.url).protocol === 'http:' && !isLoopback(new URL(webhook.url).hostname.replace(/^\[|\]$/g, ''))) {
    logger.warn(`${PKG}: notify.webhookUrl uses plain http; alerts and the webhook's secret path cross the network unencrypted`, {
      webhook: webhookOrigin(webhook.url),
    })
  }

  const stats: AlertEngineStats = { fired: 0, delivered: 0, deliveryFailures: 0, blocked: 0, spared: 0, storeErrors: 0 }
  const spared = neverBlockMatcher(raw.neverBlock ?? [])
  const inflight = new Set<Promise<unknown>>()
  const stop = new AbortController()
  let lastStoreErrorLog = 0

  const track = (p: Promise<unknown>): void => {
    inflight.add(p)
    void p.finally(() => inflight.delete(p))
  }

  /**
   * Whether an event is the caller's own doing, the only kind a block_ip rule counts: its failed
   * authentication, a refusal by its own per-address or per-key limit (`details.own_limit`), or a
   * request of its that a layer refused. A 429 from a bucket the caller shares with others (the
   * gateway's, a provider's, a quota) is somebody else's doing: counting it would let one tenant
   * drain a shared bucket and get the others' addresses denylisted.
   */
  const callersOwn = (event: SecurityEvent): boolean => {
    if (event.event_type === 'auth_failure') return true
    if (event.event_type !== 'security_violation') return false
    if (!isRateLimit(event) && !isSharedLimitRefusal(event)) return true
    const details = event.details as Record<string, unknown> | undefined
    return details?.own_limit === true
  }

  const matches = (metric: AlertMetric, event: SecurityEvent): boolean => {
    switch (metric) {
      case 'auth_failures':
        return event.event_type === 'auth_failure'
      case 'rate_limit_violations':
        return isRateLimit(event)
      case 'security_events':
        return true
      case 'credential_rejections':
        return event.event_type === 'credential_access' && event.result === 'rejected'
      case 'credentials_disabled':
        return event.result === 'credential_disabled'
    }
  }

  const fire = async (rule: ResolvedAlertRule, subject: string, count: number): Promise<void> => {
    stats.fired++
    const window = formatWindow(rule.windowMs)
    const summary = `${rule.metric} reached ${count} in ${window} (condition: ${rule.condition})`
    logger.warn(`${PKG}: alert "${rule.name}" fired: ${summary}`, {
      rule: rule.name,
      metric: rule.metric,
      count,
      window,
      action: rule.action,
      ...(rule.action === 'block_ip' ? { ip: subject } : {}),
    })
    if (rule.action === 'notify_admin' && webhook) {
      const text = masker.text(`[Gatehouse] Alert "${rule.name}": ${summary}`)
      const ok = await postWebhook(webhook, { text }, logger, stop.signal)
      if (ok) stats.delivered++
      else stats.deliveryFailures++
      return
    }
    if (rule.action === 'block_ip' && onBlockIp) {
      if (spared(subject)) {
        // Loopback and the operator's own addresses (trusted proxies) are never blocked: a block
        // would take down every client behind them. The alert is still logged above.
        stats.spared++
        logger.warn(`${PKG}: alert "${rule.name}" would block ${subject}, which is never blocked (loopback or neverBlock); alert only`, {
          rule: rule.name,
          ip: subject,
        })
        return
      }
      const block: BlockRequest = {
        ip: subject,
        ttlSeconds: rule.ttlSeconds,
        reason: `alert "${rule.name}": ${summary}`,
        rule: rule.name,
      }
      try {
        await onBlockIp(block)
        stats.blocked++
      } catch (err) {
        logger.error(`${PKG}: onBlockIp failed for alert "${rule.name}"`, {
          ip: subject,
          error: masker.text(err instanceof Error ? err.message : String(err)),
        })
      }
    }
  }

  const storeFailed = (rule: ResolvedAlertRule, err: unknown): void => {
    stats.storeErrors++
    const now = Date.now()
    if (now - lastStoreErrorLog < 60_000) return
    lastStoreErrorLog = now
    logger.error(`${PKG}: the alert store failed; events are not being counted for alerts`, {
      rule: rule.name,
      error: masker.text(err instanceof Error ? err.message : String(err)),
      failures: stats.storeErrors,
    })
  }

  const recordEvent = (event: SecurityEvent): void => {
    if (stop.signal.aborted || event === null || typeof event !== 'object') return
    try {
      for (const rule of rules) {
        if (!matches(rule.metric, event)) continue
        let subject = '*'
        if (rule.action === 'block_ip') {
          if (typeof event.ip !== 'string' || !callersOwn(event)) continue
          const ip = normalizeIp(event.ip)
          if (isIP(ip) === 0) continue
          subject = ip
        }
        const now = Date.now()
        track(
          Promise.resolve()
            .then(() => windows.hit(rule.id, subject, now, rule.windowMs, rule.min))
            .then(
              (hit) => (hit.fire ? fire(rule, subject, hit.count) : undefined),
              (err: unknown) => storeFailed(rule, err),
            )
            .catch((err: unknown) => logger.error(`${PKG}: alert action failed`, { rule: rule.name, error: String(err) })),
        )
      }
    } catch (err) {
      logger.error(`${PKG}: an event could not be evaluated`, { error: err instanceof Error ? err.message : String(err) })
    }
  }

  const idle = async (): Promise<void> => {
    for (let i = 0; i < 100 && inflight.size > 0; i++) await Promise.allSettled([...inflight])
  }

  let stopping: Promise<void> | undefined
  return Object.freeze({
    rules,
    recordEvent,
    idle,
    shutdown: () => {
      stopping ??= (async () => {
        stop.abort()
        await idle()
        await windows.shutdown()
      })()
      return stopping
    },
    stats: () => ({ ...stats }),
  })
}
