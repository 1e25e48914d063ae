import type { Masker } from '@gatehouse/core'
import type { AlertEngineConfig } from './config'
import { PKG, type BlockRequest } from './options'
import type { ResolvedAlertRule } from './rules'
import { postWebhook, type WebhookTarget } from './webhook'

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

export const emptyStats = (): AlertEngineStats => ({ fired: 0, delivered: 0, deliveryFailures: 0, blocked: 0, spared: 0, storeErrors: 0 })

function formatWindow(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0) return `${ms / 60_000}m`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}

/** What the actions of one engine share. */
interface ActionContext {
  readonly config: AlertEngineConfig
  readonly stats: AlertEngineStats
  readonly masker: Masker
  /** Aborted on shutdown: cuts webhook retries short. */
  readonly signal: AbortSignal
}

async function notifyAdmin(ctx: ActionContext, webhook: WebhookTarget, rule: ResolvedAlertRule, summary: string): Promise<void> {
  const text = ctx.masker.text(`[Gatehouse] Alert "${rule.name}": ${summary}`)
  const ok = await postWebhook(webhook, { text }, ctx.config.logger, ctx.signal)
  if (ok) ctx.stats.delivered++
  else ctx.stats.deliveryFailures++
}

async function blockIp(
  ctx: ActionContext,
  onBlockIp: (block: BlockRequest) => void | Promise<void>,
  rule: ResolvedAlertRule,
  ip: string,
  summary: string,
): Promise<void> {
  const { logger } = ctx.config
  if (ctx.config.neverBlocked(ip)) {
    // Loopback and the operator's own addresses (trusted proxies) are never blocked: a block
    // would take down every client behind them. The alert is still logged.
    ctx.stats.spared++
    logger.warn(`${PKG}: alert "${rule.name}" would block ${ip}, which is never blocked (loopback or neverBlock); alert only`, {
      rule: rule.name,
      ip,
    })
    return
  }
  try {
    await onBlockIp({ ip, ttlSeconds: rule.ttlSeconds, reason: `alert "${rule.name}": ${summary}`, rule: rule.name })
    ctx.stats.blocked++
  } catch (err) {
    logger.error(`${PKG}: onBlockIp failed for alert "${rule.name}"`, {
      ip,
      error: ctx.masker.text(err instanceof Error ? err.message : String(err)),
    })
  }
}

/**
 * What a rule does when it fires for a subject (the address for block_ip, `*` for notify_admin):
 * log it at warn, then post to the webhook or call onBlockIp.
 */
export function fireAction(ctx: ActionContext): (rule: ResolvedAlertRule, subject: string, count: number) => Promise<void> {
  const { config, stats } = ctx
  return async (rule, subject, count) => {
    stats.fired++
    const window = formatWindow(rule.windowMs)
    const summary = `${rule.metric} reached ${count} in ${window} (condition: ${rule.condition})`
    config.logger.warn(`${PKG}: alert "${rule.name}" fired: ${summary}`, {
      rule: rule.name,
      metric: rule.metric,
      count,
      window,
      action: rule.action,
      ...(rule.action === 'block_ip' ? { ip: subject } : {}),
    })
    if (rule.action === 'notify_admin' && config.webhook) await notifyAdmin(ctx, config.webhook, rule, summary)
    else if (rule.action === 'block_ip' && config.onBlockIp) await blockIp(ctx, config.onBlockIp, rule, subject, summary)
  }
}
