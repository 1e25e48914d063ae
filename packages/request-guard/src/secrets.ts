import type { SecretMatcher } from '@gatehouse/core'
import type { SecretAction, SecretActions } from './secrets-options'
import { locate } from './secret-paths'

/** Most hits an event lists; `count` gives the total. */
export const MAX_LISTED_SECRETS = 20

type Acted = Exclude<SecretAction, 'off'>

/** One credential an event lists: never the credential, only where it is and what was done. */
export interface ListedSecret {
  rule: string
  json_path: string
  action: Acted
}

/** What the scan of one body found. */
export interface SecretFindings {
  /** The strongest action taken: `block` refuses the body, `mask` rewrites it, `log` lets it pass. */
  action: Acted
  /** The first `MAX_LISTED_SECRETS` hits, in body order. */
  listed: ListedSecret[]
  count: number
  /** The hit a refusal names (the first blocked one). */
  blocked?: ListedSecret
  /** The body text with every masked credential replaced (when `action` is `mask`). */
  masked?: string
}

interface Hit {
  rule: string
  start: number
  end: number
  action: Acted
}

/** The marker a masked credential becomes: JSON-safe (no quote, no backslash). */
export const maskMarker = (rule: string): string => `[REDACTED:${rule}]`

/** A credential whose span holds a string's closing quote cannot be masked without breaking the JSON. */
function leavesString(text: string, hit: Hit): boolean {
  for (let j = hit.start; j < hit.end; j++) if (text.charCodeAt(j) === 0x22) return true
  return false
}

/**
 * Scan a body's text once with the matcher; only when something is found, locate the hits (one
 * tokenizer pass) and build the masked text. Undefined when nothing is found. `shape` `text` is a
 * body that is not JSON (a file upload, read one character per byte): a hit is masked where it is,
 * its JSON path is `$`.
 */
export function inspectSecrets(
  matcher: SecretMatcher,
  text: string,
  actions: SecretActions,
  shape: 'json' | 'text' = 'json',
): SecretFindings | undefined {
  const hits: Hit[] = []
  matcher.forEach(text, (m) => {
    const action = actions.explicit.get(m.rule.id) ?? actions.fallback
    if (action !== 'off') hits.push({ rule: m.rule.id, start: m.start, end: m.end, action })
  })
  if (hits.length === 0) return undefined
  if (shape === 'json') for (const hit of hits) if (hit.action === 'mask' && leavesString(text, hit)) hit.action = 'block'
  const firstBlock = hits.findIndex((h) => h.action === 'block')
  const where =
    shape === 'text'
      ? hits.map(() => ({ path: '$', stringEnd: text.length }))
      : locate(
          text,
          hits.map((h) => h.start),
          (i) => i < MAX_LISTED_SECRETS || i === firstBlock,
        )
  // A hit outside any string (not JSON-shaped text) has nothing to mask within: it is blocked.
  hits.forEach((h, i) => {
    if (h.action === 'mask' && where[i]!.stringEnd === -1) h.action = 'block'
  })
  const listedAt = (i: number): ListedSecret => ({
    rule: hits[i]!.rule,
    json_path: where[i]!.path || '$',
    action: hits[i]!.action,
  })
  const listed = hits.slice(0, MAX_LISTED_SECRETS).map((_, i) => listedAt(i))
  const block = hits.findIndex((h) => h.action === 'block')
  if (block !== -1) return { action: 'block', listed, count: hits.length, blocked: listedAt(block) }
  if (!hits.some((h) => h.action === 'mask')) return { action: 'log', listed, count: hits.length }
  return {
    action: 'mask',
    listed,
    count: hits.length,
    masked: maskText(
      text,
      hits,
      where.map((w) => w.stringEnd),
    ),
  }
}

/** The text with each masked hit replaced by its marker; every other character as it was. */
function maskText(text: string, hits: readonly Hit[], stringEnds: readonly number[]): string {
  let out = ''
  let last = 0
  const pem = pemEnds(text)
  hits.forEach((h, i) => {
    if (h.action !== 'mask' || h.start < last) return
    // A private key's match covers its header and first line: hide the whole block.
    const end = h.rule === 'private-key' ? pem(h.end, stringEnds[i]!) : h.end
    out += text.slice(last, h.start) + maskMarker(h.rule)
    last = end
  })
  return out + text.slice(last)
}

const PEM_END = '-----END '

/**
 * Where a PEM block that continues at `from` ends: after its `-----END … -----` line when that is
 * in the same string, else at the string's end. Searches are remembered, so many keys in one body
 * cost one pass.
 */
function pemEnds(text: string): (from: number, stringEnd: number) => number {
  let searchedFrom = -1
  let found = -1
  return (from, stringEnd) => {
    if (searchedFrom === -1 || from < searchedFrom || (found !== -1 && found < from)) {
      found = text.indexOf(PEM_END, from)
      searchedFrom = from
    }
    if (found === -1 || found >= stringEnd) return stringEnd
    const close = text.slice(found + PEM_END.length, found + PEM_END.length + 80).indexOf('-----')
    const end = close === -1 ? stringEnd : found + PEM_END.length + close + 5
    return Math.min(end, stringEnd)
  }
}
