import { maskSecret, maskText } from './mask-text'
import { bigintAsText, isSensitiveField, KEY_CACHE_SIZE, KEY_MASKED, maskDeep, maskedJson, type KeyInfo } from './mask-value'

/**
 * Secret masking: the one function every sink (audit log, application log, error bodies, metrics)
 * passes text through. Text masking (the rule table's credential formats and the masker's own
 * patterns) is in mask-text.ts; deep copies and JSON of values in mask-value.ts.
 */

export { MASK, MASK_RULE_NAMES, maskSecret } from './mask-text'
export { isSensitiveField } from './mask-value'

export interface MaskerOptions {
  /** Exact secret values to mask wherever they appear (configured provider keys, encryption keys). */
  knownSecrets?: readonly string[]
}

export interface Masker {
  /** Mask every credential found in a text. */
  text(input: string): string
  /** Deep copy of a value with every secret masked: strings and keys scanned, sensitive fields replaced, Dates as ISO text. */
  value<T>(input: T): T
  /**
   * The JSON text of `value(input)` (a BigInt written as a string), in one pass without the copy:
   * what a sink that writes JSON lines wants. `undefined` when the input has no JSON form (undefined,
   * a function), as JSON.stringify gives.
   */
  json(input: unknown): string | undefined
}

/** Build a masker that also masks the given literal secrets (shorter than 8 characters are ignored). */
export function createMasker(options: MaskerOptions = {}): Masker {
  const literals = [...new Set((options.knownSecrets ?? []).filter((s) => s.length >= 8))].sort(
    (a, b) => b.length - a.length,
  )
  // Literals are sorted longest first: a text shorter than the last cannot hold any of them.
  const shortestLiteral = literals.length > 0 ? literals[literals.length - 1]!.length : Infinity
  const text = (input: string): string => {
    let out = input
    if (input.length >= shortestLiteral) {
      for (const secret of literals) {
        if (out.includes(secret)) out = out.split(secret).join(maskSecret(secret))
      }
    }
    return maskText(out)
  }
  const value = <T>(input: T): T => maskDeep(input, text, 0) as T
  // Field names repeat from one event to the next: what masking makes of a name is kept (bounded).
  const keyCache = new Map<string, KeyInfo>()
  const keyInfo = (k: string): KeyInfo => {
    let info = keyCache.get(k)
    if (info === undefined) {
      info = { quoted: text(k) === k ? JSON.stringify(k) : undefined, sensitive: isSensitiveField(k) }
      // A name that masking changes is a secret itself: never kept.
      if (info.quoted !== undefined && keyCache.size < KEY_CACHE_SIZE && k.length <= 64) keyCache.set(k, info)
    }
    return info
  }
  const json = (input: unknown): string | undefined => {
    const out = maskedJson(input, text, keyInfo, 0)
    // A key that masking changed could now collide with another: the copy settles that as JSON.stringify would.
    return out === KEY_MASKED ? JSON.stringify(maskDeep(input, text, 0), bigintAsText) : out
  }
  return Object.freeze({ text, value, json })
}

const defaultMasker = createMasker()

/** Mask every credential found in a text (known formats, bearer tokens, query-string keys). */
export const maskSecrets = (input: string): string => maskText(input)

/** Deep copy of any value with every secret masked. */
export const maskValue = defaultMasker.value
