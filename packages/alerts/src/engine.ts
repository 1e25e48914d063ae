import { createMasker, type SecurityEvent, type SecurityEventHandler } from '@gatehouse/core'
import { emptyStats, fireAction, type AlertEngineStats } from './actions'
import { resolveAlertEngineConfig } from './config'
import { subjectFor } from './matching'
import { PKG, type AlertEngineOptions, type AlertStore } from './options'
import type { ResolvedAlertRule } from './rules'
import { MemoryAlertStore } from './stores'
import { isPlainHttpOffLoopback, webhookOrigin } from './webhook'

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

/** The promises started so far and not yet settled. */
function inflightSet(): { track(p: Promise<unknown>): void; idle(): Promise<void> } {
  const inflight = new Set<Promise<unknown>>()
  return {
    track: (p) => {
      inflight.add(p)
      void p.finally(() => inflight.delete(p))
    },
    idle: async () => {
      for (let i = 0; i < 100 && inflight.size > 0; i++) await Promise.allSettled([...inflight])
    },
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
  const config = resolveAlertEngineConfig(options)
  const { rules, logger, webhook } = config
  const windows: AlertStore = config.store ?? new MemoryAlertStore()
  const masker = createMasker({ knownSecrets: webhook ? [webhook.url] : [] })
  if (webhook && isPlainHttpOffLoopback(webhook)) {
    logger.warn(`${PKG}: notify.webhookUrl uses plain http; alerts and the webhook's secret path cross the network unencrypted`, {
      webhook: webhookOrigin(webhook.url),
    })
  }
  const stats = emptyStats()
  const stop = new AbortController()
  const fire = fireAction({ config, stats, masker, signal: stop.signal })
  const work = inflightSet()
  let lastStoreErrorLog = 0

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

  const count = (rule: ResolvedAlertRule, subject: string): void => {
    const now = Date.now()
    work.track(
      Promise.resolve()
        .then(() => windows.hit(rule.id, subject, now, rule.windowMs, rule.min))
        .then(
          (hit) => (hit.fire ? fire(rule, subject, hit.count) : undefined),
          (err: unknown) => storeFailed(rule, err),
        )
        .catch((err: unknown) => logger.error(`${PKG}: alert action failed`, { rule: rule.name, error: String(err) })),
    )
  }

  const recordEvent = (event: SecurityEvent): void => {
    if (stop.signal.aborted || event === null || typeof event !== 'object') return
    try {
      for (const rule of rules) {
        const subject = subjectFor(rule, event, config.isRateLimitViolation)
        if (subject !== undefined) count(rule, subject)
      }
    } catch (err) {
      logger.error(`${PKG}: an event could not be evaluated`, { error: err instanceof Error ? err.message : String(err) })
    }
  }

  let stopping: Promise<void> | undefined
  return Object.freeze({
    rules,
    recordEvent,
    idle: work.idle,
    shutdown: () => {
      stopping ??= (async () => {
        stop.abort()
        await work.idle()
        await windows.shutdown()
      })()
      return stopping
    },
    stats: () => ({ ...stats }),
  })
}
