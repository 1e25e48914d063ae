import { resolve as resolvePath } from 'node:path'
import type { Logger, Masker, SecurityEvent, SecurityEventHandler } from '@gatehouse/core'
import { createAuditLogger, type AuditLogger } from '@gatehouse/audit-log'
import { createMetrics, type GatehouseMetrics } from '@gatehouse/metrics'
import { createEventBuffer } from '@gatehouse/dashboard'
import { createStorageSink, type StorageSink } from '@gatehouse/storage'
import type { GatehouseConfig } from '../config/types'
import { auditShipping } from './audit-shipping'
import { auditLogAdapter, storageAdapter } from '../config/adapters'

/** Where the gateway's security events go: the audit log, metrics, storage, the dashboard's buffer, then whatever is added. */
export interface EventSinks {
  /** Emit an event to every sink; a sink that throws is logged and the others still get it. */
  emit: SecurityEventHandler
  add(sink: SecurityEventHandler): void
  audit: AuditLogger | undefined
  metrics: GatehouseMetrics | undefined
  storage: StorageSink | undefined
  /** The dashboard's recent security events and top refusals. */
  recent: ReturnType<typeof createEventBuffer>
}

export interface EventSinkContext {
  config: GatehouseConfig
  cwd: string
  auditKey: string
  knownSecrets: string[]
  masker: Masker
  logger: Logger
}

export function createEventSinks({ config, cwd, auditKey, knownSecrets, masker, logger }: EventSinkContext): EventSinks {
  const sinks: SecurityEventHandler[] = []
  const emit: SecurityEventHandler = (event: SecurityEvent) => {
    for (const sink of sinks) {
      try {
        sink(event)
      } catch (err) {
        logger.error('event sink failed', { error: masker.text(String(err)) })
      }
    }
  }
  const auditOptions = auditLogAdapter.options(config)
  const audit = auditOptions
    ? createAuditLogger({ ...auditOptions, file: resolvePath(cwd, config.logging.audit.file), key: auditKey, ...auditShipping(config, cwd), knownSecrets, logger })
    : undefined
  if (audit) sinks.push(audit.log)
  const metrics = config.metrics.enabled ? createMetrics({ prefix: config.metrics.prefix, knownSecrets }) : undefined
  if (metrics) sinks.push(metrics.recordEvent)
  // Request storage in PostgreSQL: batched off the request path; a slow or absent database never
  // delays a request (events queue up to a bound, then are counted as dropped).
  const storageOptions = storageAdapter.options(config)
  const storage = storageOptions ? createStorageSink({ ...storageOptions, knownSecrets, logger, onEvent: (e) => emit(e) }) : undefined
  if (storage) sinks.push(storage.record)
  // Access-log lines (provider_request) stay out of the dashboard's buffer: at a thousand requests a
  // second they would leave it half a second of history, and every request would put one more
  // mid-lived object in the heap.
  const recent = createEventBuffer({})
  sinks.push((event) => {
    if (event.event_type !== 'provider_request') recent.record(event)
  })
  return { emit, add: (sink) => void sinks.push(sink), audit, metrics, storage, recent }
}
