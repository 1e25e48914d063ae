/**
 * JSON.stringify leaves U+2028, U+2029 and the C1 controls (U+0080–U+009F, NEL and CSI among them)
 * raw; some readers and terminals treat them as line breaks or escape sequences. They can only
 * occur inside JSON strings, so escaping them keeps the JSON identical in meaning.
 */
const LINE_BREAKERS = /[\u0080-\u009f\u2028\u2029]/
const LINE_BREAKERS_ALL = /[\u0080-\u009f\u2028\u2029]/g

export function escapeLineBreakers(json: string): string {
  if (!LINE_BREAKERS.test(json)) return json
  return json.replace(LINE_BREAKERS_ALL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

const bigintAsText = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? v.toString() : v)

/** JSON.stringify that never throws (BigInt, cycles) and never yields raw line breakers: one log line stays one line. */
export function safeStringify(value: unknown): string {
  let json: string
  try {
    // Without a replacer first: a replacer function takes JSON.stringify off its fast path, and
    // only a BigInt (a TypeError here) needs one.
    json = JSON.stringify(value)
  } catch {
    try {
      json = JSON.stringify(value, bigintAsText)
    } catch {
      return '"[unserializable]"'
    }
  }
  return escapeLineBreakers(json)
}
