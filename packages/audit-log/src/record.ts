import { isSecurityEventType, type SecurityEvent } from '@gatehouse/core'
import { safeStringify, type SinkMasker } from './mask'

/** The top-level fields of an audit line, in the order they are written (SPEC §2). */
export const AUDIT_FIELDS = ['timestamp', 'event_type', 'provider', 'user_id', 'ip', 'request_id', 'result', 'details'] as const

const MAX_FIELD_CHARS = 1024

function timestampOf(value: unknown): string {
  if (typeof value === 'string') {
    const t = Date.parse(value)
    if (!Number.isNaN(t)) return new Date(t).toISOString()
  }
  return new Date().toISOString()
}

function field(value: unknown, mask: SinkMasker): string | undefined {
  if (value === undefined || value === null) return undefined
  const s = typeof value === 'string' ? value : safeStringify(value)
  const masked = mask.text(s)
  return masked.length > MAX_FIELD_CHARS ? `${masked.slice(0, MAX_FIELD_CHARS)}…` : masked
}

/**
 * The masked JSON text of one event, without the chain fields (`seq`, `prev_hash`, `hash`, which the
 * writer adds). Returns undefined for an object that is not a security event.
 */
export function auditRecordBody(event: SecurityEvent, mask: SinkMasker, maxLineBytes: number): string | undefined {
  if (event === null || typeof event !== 'object' || !isSecurityEventType(event.event_type)) return undefined
  const record: Record<string, unknown> = { timestamp: timestampOf(event.timestamp), event_type: event.event_type }
  for (const name of ['provider', 'user_id', 'ip', 'request_id', 'result'] as const) {
    const v = field(event[name], mask)
    if (v !== undefined) record[name] = v
  }
  if (event.details !== undefined && event.details !== null) {
    const details: unknown = typeof event.details === 'object' ? event.details : { value: event.details }
    record.details = mask.value(details)
  }
  let body = safeStringify(record)
  // Room for the chain fields the writer appends (seq, prev_hash, hash: under 200 bytes).
  const budget = maxLineBytes - 200
  const bytes = Buffer.byteLength(body)
  if (bytes > budget && record.details !== undefined) {
    record.details = { _truncated: true, _bytes: bytes }
    body = safeStringify(record)
  }
  return body
}
