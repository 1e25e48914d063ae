import { isSecurityEventType, type SecurityEvent } from '@gatehouse/core'
import { escapeLineBreakers, safeStringify, type SinkMasker } from './mask'

/** The top-level fields of an audit line, in the order they are written (SPEC §2). */
export const AUDIT_FIELDS = ['timestamp', 'event_type', 'provider', 'user_id', 'ip', 'request_id', 'result', 'details'] as const

const MAX_FIELD_CHARS = 1024

/** The form `Date.prototype.toISOString` writes for years 0 to 9999. */
const ISO_UTC = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.\d{3}Z$/

/** True when `value` is exactly what toISOString would write for it (no day or hour rolling over). */
function isCanonicalIso(value: string): boolean {
  const m = ISO_UTC.exec(value)
  if (!m) return false
  const year = Number(m[1])
  const month = Number(m[2])
  const day = Number(m[3])
  if (month < 1 || month > 12 || day < 1 || Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6]) > 59) return false
  // Day 0 of the next month is the last day of this one (worked out only for the days that need it).
  return year >= 100 && (day <= 28 || day <= new Date(Date.UTC(year, month, 0)).getUTCDate())
}

function timestampOf(value: unknown): string {
  if (typeof value === 'string') {
    // Events from core's emitSecurityEvent already carry toISOString's text: keep it as it is.
    if (isCanonicalIso(value)) return value
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
 * writer adds). Returns undefined for an object that is not a security event. Written field by
 * field in AUDIT_FIELDS order; the details go through the masker's one-pass JSON writer.
 */
export function auditRecordBody(event: SecurityEvent, mask: SinkMasker, maxLineBytes: number): string | undefined {
  if (event === null || typeof event !== 'object' || !isSecurityEventType(event.event_type)) return undefined
  let head = `{"timestamp":${JSON.stringify(timestampOf(event.timestamp))},"event_type":${JSON.stringify(event.event_type)}`
  for (const name of ['provider', 'user_id', 'ip', 'request_id', 'result'] as const) {
    const v = field(event[name], mask)
    if (v !== undefined) head += `,"${name}":${JSON.stringify(v)}`
  }
  if (event.details === undefined || event.details === null) return escapeLineBreakers(`${head}}`)
  const details = mask.json(typeof event.details === 'object' ? event.details : { value: event.details })
  if (details === undefined) return escapeLineBreakers(`${head}}`)
  const body = escapeLineBreakers(`${head},"details":${details}}`)
  // Room for the chain fields the writer appends (seq, prev_hash, hash: under 200 bytes).
  const bytes = Buffer.byteLength(body)
  if (bytes <= maxLineBytes - 200) return body
  return escapeLineBreakers(`${head},"details":{"_truncated":true,"_bytes":${bytes}}}`)
}
