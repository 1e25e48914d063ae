import { emitSecurityEvent, type Logger, type SecurityEventHandler } from '@gatehouse/core'
import type { IpFilterMiddleware } from '@gatehouse/ip-filter'
import type Redis from 'ioredis'
import { createAlertEngine, RedisAlertStore } from '@gatehouse/alerts'
import type { GatehouseConfig } from '../config/types'
import { alertsAdapter } from '../config/adapters'
import { trustedProxyAddresses } from '../config/trust-proxy'

export type AlertEngine = ReturnType<typeof createAlertEngine>

/**
 * The alert rules, with `block_ip` carried out on the ip filter. notify_admin needs somewhere to
 * post: without notify.webhook_url such rules are left out, and said so. Undefined with no rule.
 */
export function createAlerts(config: GatehouseConfig, ipf: IpFilterMiddleware, emit: SecurityEventHandler, redis: Redis | undefined, logger: Logger): AlertEngine | undefined {
  const { rules: all = [], notify } = alertsAdapter.options(config)
  const rules = all.filter((r) => r.action !== 'notify_admin' || notify?.webhookUrl)
  for (const r of all) {
    if (!rules.includes(r)) logger.warn(`alert "${r.name}" is inactive: notify_admin needs notify.webhook_url (or SLACK_WEBHOOK_URL)`)
  }
  if (!rules.length) return undefined
  return createAlertEngine({
    rules,
    ...(notify ? { notify } : {}),
    // Loopback is always spared; so are the operator's own proxies and the listed addresses.
    neverBlock: [...config.server.security.never_block, ...trustedProxyAddresses(config.server.trust_proxy)],
    onBlockIp: async (b) => {
      await ipf.add(b.ip, { reason: `alert: ${b.reason}`, ttlSeconds: b.ttlSeconds })
      emitSecurityEvent(emit, { event_type: 'config_change', ip: b.ip, result: 'ip_blocked', details: { rule: b.rule, ttl_seconds: b.ttlSeconds } })
    },
    ...(redis ? { store: new RedisAlertStore({ client: redis, prefix: `${config.store.key_prefix}alerts:` }) } : {}),
    logger,
  })
}
