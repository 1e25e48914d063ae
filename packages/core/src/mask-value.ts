import { MASK, maskSecret } from './mask-text'

// Masking of values: a deep copy with every string masked and sensitive fields replaced, and the
// JSON text of that copy written in one pass. Text masking itself is in mask-text.ts.

/** Field names whose values are secrets whatever they look like. Compared lower-cased, `-` as `_`. */
const SENSITIVE_FIELDS = new Set([
  'authorization',
  'proxy_authorization',
  'x_api_key',
  'x_goog_api_key',
  'api_key',
  'apikey',
  'cookie',
  'set_cookie',
  'token',
  'access_token',
  'refresh_token',
  'id_token',
  'secret',
  'client_secret',
  'secret_key',
  'private_key',
  'password',
  'passphrase',
  'encryption_key',
  'key_salt',
  'salt',
  'webhook_url',
])

export function isSensitiveField(name: string): boolean {
  const lower = name.toLowerCase()
  if (SENSITIVE_FIELDS.has(lower)) return true
  return lower.includes('-') && SENSITIVE_FIELDS.has(lower.replace(/-/g, '_'))
}

const MAX_DEPTH = 20

export function maskDeep(input: unknown, text: (s: string) => string, depth: number): unknown {
  if (typeof input === 'string') return text(input)
  if (input === null || typeof input !== 'object') return input
  if (depth >= MAX_DEPTH) return '[depth limit]'
  if (Array.isArray(input)) return input.map((v) => maskDeep(v, text, depth + 1))
  if (input instanceof Error) {
    return { name: input.name, message: text(input.message) }
  }
  if (input instanceof Date) return Number.isFinite(input.getTime()) ? input.toISOString() : String(input)
  const out: Record<string, unknown> = {}
  const obj = input as Record<string, unknown>
  const keys = Object.keys(obj)
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!
    const v = obj[k]
    // A secret can arrive as a key too (a key used as a field name): keys are masked like values.
    const key = text(k)
    if (isSensitiveField(k) && v !== undefined && v !== null && v !== '') {
      out[key] = typeof v === 'string' ? maskSecret(v) : Array.isArray(v) ? v.map(() => MASK) : MASK
    } else {
      out[key] = maskDeep(v, text, depth + 1)
    }
  }
  return out
}

export const bigintAsText = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? v.toString() : v)

/** maskedJson's signal that a key was masked: the caller falls back to the copy. */
export const KEY_MASKED = '\u0000key masked'

/** What maskedJson needs of a field name: its JSON text (undefined when masking changes it), and whether its value is a secret. */
export interface KeyInfo {
  quoted: string | undefined
  sensitive: boolean
}
export const KEY_CACHE_SIZE = 512

/** JSON text of maskDeep(input), written directly. Mirrors maskDeep and JSON.stringify case for case. */
export function maskedJson(input: unknown, text: (s: string) => string, keyInfo: (k: string) => KeyInfo, depth: number): string | undefined {
  switch (typeof input) {
    case 'string':
      return JSON.stringify(text(input))
    case 'number':
      return JSON.stringify(input)
    case 'boolean':
      return input ? 'true' : 'false'
    case 'bigint':
      return JSON.stringify(input.toString())
    case 'object':
      break
    default:
      return undefined // undefined, function, symbol
  }
  if (input === null) return 'null'
  if (depth >= MAX_DEPTH) return '"[depth limit]"'
  if (Array.isArray(input)) {
    let out = '['
    for (let i = 0; i < input.length; i++) {
      const v = maskedJson(input[i], text, keyInfo, depth + 1)
      if (v === KEY_MASKED) return KEY_MASKED
      out += (i === 0 ? '' : ',') + (v ?? 'null')
    }
    return `${out}]`
  }
  if (input instanceof Error) return `{"name":${JSON.stringify(input.name)},"message":${JSON.stringify(text(input.message))}}`
  if (input instanceof Date) return JSON.stringify(Number.isFinite(input.getTime()) ? input.toISOString() : String(input))
  const obj = input as Record<string, unknown>
  const keys = Object.keys(obj)
  let out = '{'
  let first = true
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!
    const info = keyInfo(k)
    if (info.quoted === undefined) return KEY_MASKED
    const v = obj[k]
    let written: string | undefined
    if (info.sensitive && v !== undefined && v !== null && v !== '') {
      written = typeof v === 'string' ? JSON.stringify(maskSecret(v)) : Array.isArray(v) ? `[${v.map(() => `"${MASK}"`).join(',')}]` : `"${MASK}"`
    } else {
      written = maskedJson(v, text, keyInfo, depth + 1)
      if (written === KEY_MASKED) return KEY_MASKED
    }
    if (written === undefined) continue
    out += `${first ? '' : ','}${info.quoted}:${written}`
    first = false
  }
  return `${out}}`
}
