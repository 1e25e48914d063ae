import { isIP } from 'node:net'
import { isSecurityEventType, normalizeIp, type Masker, type SecurityEvent } from '@gatehouse/core'

/** Column order of an `api_requests` row, as written by the sink. */
export const REQUEST_COLUMNS = [
  'timestamp',
  'request_id',
  'key_id',
  'provider',
  'ip_address',
  'method',
  'path',
  'response_status',
  'duration_ms',
  'input_tokens',
  'output_tokens',
  'result',
] as const

/** Column order of a `security_events` row. */
export const EVENT_COLUMNS = [
  'timestamp',
  'event_type',
  'provider',
  'key_id',
  'ip_address',
  'request_id',
  'result',
  'details',
] as const

/** Column order of a `request_bodies` row. */
export const BODY_COLUMNS = ['timestamp', 'request_id', 'body', 'bytes', 'truncated'] as const

const MAX_ID_CHARS = 256
const MAX_PATH_CHARS = 2048
const MAX_DETAILS_BYTES = 16_384
const INT_MAX = 2_147_483_647

/** PostgreSQL rejects NUL in text and jsonb. */
// eslint-disable-next-line no-control-regex
const NUL = /\u0000/g

/** A text column: masked, NUL removed, bounded; anything not a string or number becomes NULL. */
function text(mask: Masker, value: unknown, max = MAX_ID_CHARS): string | null {
  if (typeof value === 'number' && Number.isFinite(value)) value = String(value)
  if (typeof value !== 'string' || value.length === 0) return null
  const clean = mask.text(value.length > max * 4 ? value.slice(0, max * 4) : value).replace(NUL, '')
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean
}

/** An inet column: the canonical address, or NULL when it is not one ("unknown"). */
function inet(value: unknown): string | null {
  if (typeof value !== 'string') return null
  const ip = normalizeIp(value)
  return isIP(ip) !== 0 ? ip : null
}

function int(value: unknown, min = 0, max = INT_MAX): number | null {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max ? value : null
}

function float(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : null
}

/** 0001-01-01 and 10000-01-01, UTC. */
const YEAR_1 = -62_135_596_800_000
const YEAR_10000 = 253_402_300_800_000

/** The event's time when it is a valid date, else now (ISO 8601, UTC). */
function time(value: unknown): string {
  if (typeof value === 'string') {
    const t = Date.parse(value)
    // Years past 9999 print as "+275760-…", which PostgreSQL does not read.
    if (Number.isFinite(t) && t >= YEAR_1 && t < YEAR_10000) return new Date(t).toISOString()
  }
  return new Date().toISOString()
}


/** jsonb refuses an escaped lone surrogate (`"\ud800"`), which JSON.parse happily produces. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g
const wellFormed = (s: string): string => s.replace(NUL, '').replace(LONE_SURROGATE, '\ufffd')

/** Deep copy with NUL and lone surrogates removed from every string and key (jsonb refuses both). */
function cleanDeep(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return wellFormed(value)
  if (typeof value === 'bigint') return value.toString()
  if (value === null || typeof value !== 'object' || depth > 32) return value
  if (Array.isArray(value)) return value.map((v) => cleanDeep(v, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[wellFormed(k)] = cleanDeep(v, depth + 1)
  }
  return out
}

/** A deep copy with every secret masked, in values and in keys, and no NUL. */
export const maskAll = <T>(mask: Masker, value: T): T => cleanDeep(mask.value(value)) as T

/** A jsonb value as text: masked, NUL-free, and at most `maxBytes` (else a truncation marker). */
export function jsonColumn(
  mask: Masker,
  value: unknown,
  maxBytes: number,
): { json: string; bytes: number; truncated: boolean } {
  let json: string
  try {
    json = JSON.stringify(maskAll(mask, value)) ?? 'null'
  } catch {
    json = JSON.stringify({ _unserializable: true })
  }
  const bytes = Buffer.byteLength(json)
  if (bytes > maxBytes) return { json: JSON.stringify({ _truncated: true, _bytes: bytes }), bytes, truncated: true }
  return { json, bytes, truncated: false }
}

/** True when a value can be stored as an event (an object with one of the seven event types). */
export const isStorableEvent = (e: unknown): e is SecurityEvent =>
  typeof e === 'object' && e !== null && isSecurityEventType((e as { event_type?: unknown }).event_type)

/** An `api_requests` row from a `provider_request` event, in REQUEST_COLUMNS order. */
export function requestRow(mask: Masker, e: SecurityEvent): unknown[] {
  const d = (typeof e.details === 'object' && e.details !== null ? e.details : {}) as Record<string, unknown>
  const method = text(mask, d.method, 16)
  return [
    time(e.timestamp),
    text(mask, e.request_id),
    text(mask, e.user_id),
    text(mask, e.provider, 64),
    inet(e.ip),
    method === null ? null : method.toUpperCase(),
    text(mask, d.path, MAX_PATH_CHARS),
    int(d.status, 100, 999),
    float(d.duration_ms),
    int(d.input_tokens),
    int(d.output_tokens),
    text(mask, e.result, 64),
  ]
}

/** A `security_events` row from any other event, in EVENT_COLUMNS order. */
export function eventRow(mask: Masker, e: SecurityEvent): unknown[] {
  const details = e.details === undefined || e.details === null ? null : jsonColumn(mask, e.details, MAX_DETAILS_BYTES).json
  return [
    time(e.timestamp),
    e.event_type,
    text(mask, e.provider, 64),
    text(mask, e.user_id),
    inet(e.ip),
    text(mask, e.request_id),
    text(mask, e.result, 128),
    details,
  ]
}

/** The body as stored: a JSON text is parsed so it is queryable as jsonb; anything else is a string. */
export function bodyValue(body: unknown): unknown {
  let value = body
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) value = Buffer.from(value).toString('utf8')
  if (typeof value === 'string') {
    const t = value.trimStart()
    if (t.startsWith('{') || t.startsWith('[')) {
      try {
        return JSON.parse(value) as unknown
      } catch {
        return value
      }
    }
  }
  return value
}

/** Rough size of a body before it is serialized, to refuse huge ones without copying them. */
export function roughSize(body: unknown): number | undefined {
  if (typeof body === 'string') return body.length
  if (Buffer.isBuffer(body) || body instanceof Uint8Array) return body.byteLength
  return undefined
}

/** `request_id` of a body row. */
export const bodyRequestId = (mask: Masker, id: unknown): string => text(mask, id) ?? 'unknown'
