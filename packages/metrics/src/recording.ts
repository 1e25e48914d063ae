import { isSharedLimitRefusal, SECRET_RULE_IDS, type SecurityEvent } from '@gatehouse/core'
import type { Instruments } from './instruments'
import { BoundedLabel, eventTypeLabel, ipLabel, providerLabel, statusLabel } from './labels'
import type { MetricsConfig } from './options'

/** One finished request, as `observeRequest` takes it. */
export interface RequestObservation {
  provider?: string | undefined
  status: number
  durationSeconds: number
  usage?: { inputTokens?: number | undefined; outputTokens?: number | undefined } | undefined
}

/** The actions the reference server lets through while the audit log is down (a bounded label). */
const UNAUDITED_ACTIONS: ReadonlySet<string> = new Set(['denylist_add', 'key_revoke', 'credential_revoke', 'maintenance_on', 'provider_off'])

export const finite = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined)

const detail = (event: SecurityEvent, name: string): unknown => (event.details as Record<string, unknown> | undefined)?.[name]

/** `observeRequest`: count one finished request. Never throws. */
export function requestObserver(config: MetricsConfig, m: Instruments): (o: RequestObservation) => void {
  return (o) => {
    try {
      const provider = providerLabel(o.provider, config.providers)
      const status = statusLabel(o.status)
      m.requests.add(`${provider} ${status}`, () => ({ provider, status }))
      const seconds = finite(o.durationSeconds)
      if (seconds !== undefined) m.duration.observe({ provider }, seconds)
      const input = finite(o.usage?.inputTokens)
      const output = finite(o.usage?.outputTokens)
      if (input !== undefined && input > 0) m.tokens.add(`${provider} input`, () => ({ provider, direction: 'input' }), input)
      if (output !== undefined && output > 0) m.tokens.add(`${provider} output`, () => ({ provider, direction: 'output' }), output)
    } catch {
      // a metric must never break the request that produced it
    }
  }
}

/** The `provider_request` event's details as a RequestObservation. */
function observationOf(event: SecurityEvent): RequestObservation {
  const d = (event.details ?? {}) as Record<string, unknown>
  const ms = finite(d.duration_ms)
  return {
    provider: event.provider,
    status: typeof d.status === 'number' ? d.status : NaN,
    durationSeconds: ms === undefined ? NaN : ms / 1000,
    usage: { inputTokens: finite(d.input_tokens), outputTokens: finite(d.output_tokens) },
  }
}

/** request-guard's outbound secret detection: the body refused, masked, or forwarded with a credential in it. */
const SECRET_RESULTS = new Set(['secret_detected', 'secret_masked', 'secret_forwarded'])
const SECRET_ACTIONS = new Set(['block', 'mask', 'log'])
/** Rule ids are the shared table's (a bounded set); anything else is `other`. */
const RULE_IDS = new Set(SECRET_RULE_IDS)

/** One count per credential the event lists (`details.secrets`: rule, action), labelled from bounded sets only. */
function countSecrets(event: SecurityEvent, m: Instruments, config: MetricsConfig): void {
  const hits = detail(event, 'secrets')
  if (!Array.isArray(hits)) return
  const provider = providerLabel(event.provider, config.providers)
  for (const hit of hits as Array<{ rule?: unknown; action?: unknown }>) {
    const rule = typeof hit?.rule === 'string' && RULE_IDS.has(hit.rule) ? hit.rule : 'other'
    const action = typeof hit?.action === 'string' && SECRET_ACTIONS.has(hit.action) ? hit.action : 'other'
    m.outboundSecrets.inc({ provider, rule, action })
  }
}

/** `recordEvent`: count a security event; `provider_request` events also feed the request metrics. Never throws. */
export function eventRecorder(config: MetricsConfig, m: Instruments, observeRequest: (o: RequestObservation) => void): (event: SecurityEvent) => void {
  const ips = new BoundedLabel(config.maxLabelValues)
  return (event) => {
    try {
      if (event === null || typeof event !== 'object') return
      const eventType = eventTypeLabel(event.event_type)
      m.securityEvents.add(eventType, () => ({ event_type: eventType }))
      if (event.event_type === 'auth_failure') m.authFailures.inc({ provider: providerLabel(event.provider, config.providers) })
      // A refusal by a bucket the caller shares (own_limit: false) is not the caller's doing: it is
      // counted under ip="shared", so a per-address rule never sees the victims of a drained bucket.
      if (config.isRateLimitViolation(event)) m.rateLimitViolations.inc({ ip: isSharedLimitRefusal(event) ? 'shared' : ipLabel(event.ip, ips) })
      if (event.event_type === 'credential_access' && event.result === 'rejected') {
        const action = detail(event, 'action')
        m.credentialRejections.inc({
          provider: providerLabel(event.provider, config.providers),
          action: action === 'cooldown' || action === 'refresh' || action === 'kept_last_credential' ? action : 'other',
        })
      }
      if (event.event_type === 'config_change' && event.result === 'unaudited_change') {
        const action = detail(event, 'action')
        m.unauditedChanges.inc({ action: typeof action === 'string' && UNAUDITED_ACTIONS.has(action) ? action : 'other' })
      }
      if (event.event_type === 'security_violation' && SECRET_RESULTS.has(String(event.result))) countSecrets(event, m, config)
      if (event.event_type === 'provider_request') observeRequest(observationOf(event))
    } catch {
      // a metric must never break the request that produced it
    }
  }
}
