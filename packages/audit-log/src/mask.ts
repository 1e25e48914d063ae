import { createMasker, type Masker } from '@gatehouse/core'

/**
 * The one masking function every sink of this package uses: core's masker (credential formats,
 * sensitive field names, the configured literal secrets), applied to values and, because a
 * secret can also arrive as an object key, to keys.
 */
export interface SinkMasker {
  text(input: string): string
  value<T>(input: T): T
}

export function createSinkMasker(knownSecrets: readonly string[]): SinkMasker {
  const masker: Masker = createMasker({ knownSecrets })
  const text = (input: string): string => masker.text(input)
  const value = <T>(input: T): T => maskKeys(masker.value(input), text, 0) as T
  return Object.freeze({ text, value })
}

const MAX_DEPTH = 24

function maskKeys(input: unknown, text: (s: string) => string, depth: number): unknown {
  if (input === null || typeof input !== 'object' || depth > MAX_DEPTH) return input
  if (Array.isArray(input)) return input.map((v) => maskKeys(v, text, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(input as Record<string, unknown>)) {
    out[text(k)] = maskKeys(v, text, depth + 1)
  }
  return out
}

/**
 * JSON.stringify leaves U+2028, U+2029 and the C1 controls (U+0080–U+009F, NEL and CSI among them)
 * raw; some readers and terminals treat them as line breaks or escape sequences. They can only
 * occur inside JSON strings, so escaping them keeps the JSON identical in meaning.
 */
export function escapeLineBreakers(json: string): string {
  return json.replace(/[\u0080-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** JSON.stringify that never throws (BigInt, cycles) and never yields raw line breakers. */
export function safeStringify(value: unknown): string {
  try {
    return escapeLineBreakers(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)))
  } catch {
    return '"[unserializable]"'
  }
}
