import type { SecretRule } from './rules'

/**
 * How far a rule's regex can read, worked out from its source: the longest text a match can span
 * (every quantifier is bounded, so this is finite) plus the longest lookahead it can evaluate past
 * that. The chunked scan of a large file overlaps its windows by the largest reach of the rule
 * table, so a credential cut by a chunk boundary is still seen whole in one window.
 *
 * Covers the regex syntax the rule table uses: literals, escapes, classes, groups (capturing,
 * non-capturing, named), lookarounds, alternation and the quantifiers `?`, `{n}`, `{n,m}`. An
 * unbounded quantifier (`*`, `+`, `{n,}`) or a back-reference has no bound: it throws.
 */
export interface PatternReach {
  /** The most UTF-16 code units a match can consume. */
  readonly match: number
  /** The most code units a lookaround inside the pattern can read (counted on top of `match`). */
  readonly lookaround: number
}

class Reader {
  i = 0
  constructor(readonly src: string) {}
  peek(): string | undefined {
    return this.src[this.i]
  }
  fail(why: string): never {
    throw new Error(`pattern reach: ${why} at ${this.i} in ${JSON.stringify(this.src)}`)
  }
}

/** `{n}` or `{n,m}` at the reader: its upper bound; `{n,}` is unbounded. */
function braceQuantifier(r: Reader): number | undefined {
  const m = /^\{(\d+)(?:(,)(\d*))?\}/.exec(r.src.slice(r.i))
  if (m === null) return undefined
  r.i += m[0].length
  if (m[2] === undefined) return Number(m[1])
  if (m[3] === '') r.fail('unbounded quantifier')
  return Number(m[3])
}

function quantifier(r: Reader): number {
  const c = r.peek()
  let max = 1
  if (c === '*' || c === '+') r.fail('unbounded quantifier')
  else if (c === '?') {
    r.i++
  } else if (c === '{') {
    const q = braceQuantifier(r)
    if (q === undefined) return 1
    max = q
  } else return 1
  if (r.peek() === '?') r.i++ // lazy
  return max
}

/** One escape after the backslash: a single code unit, or nothing for an assertion. */
function escape(r: Reader): number {
  const c = r.src[r.i++]
  if (c === undefined) r.fail('trailing backslash')
  if (c === 'b' || c === 'B') return 0
  if (/[1-9]/.test(c) || c === 'k') r.fail('back-reference')
  if (c === 'u' && r.peek() === '{') r.fail('\\u{…} needs the u flag')
  if (c === 'x') r.i += 2
  else if (c === 'u') r.i += 4
  else if (c === 'c') r.i += 1
  return 1
}

function charClass(r: Reader): void {
  r.i++ // [
  if (r.peek() === ']') r.i++ // a leading ] is a literal
  while (r.i < r.src.length && r.src[r.i] !== ']') r.i += r.src[r.i] === '\\' ? 2 : 1
  if (r.i >= r.src.length) r.fail('unclosed class')
  r.i++
}

function alternation(r: Reader): PatternReach {
  let match = 0
  let lookaround = 0
  for (;;) {
    const seq = sequence(r)
    match = Math.max(match, seq.match)
    lookaround = Math.max(lookaround, seq.lookaround)
    if (r.peek() !== '|') return { match, lookaround }
    r.i++
  }
}

function sequence(r: Reader): PatternReach {
  let match = 0
  let lookaround = 0
  while (r.i < r.src.length && r.peek() !== '|' && r.peek() !== ')') {
    const c = r.peek()!
    let width: number
    if (c === '(') {
      r.i++
      const look = /^\?<?[=!]/.exec(r.src.slice(r.i))
      if (look) r.i += look[0].length
      else if (r.src.startsWith('?:', r.i)) r.i += 2
      else if (r.src.startsWith('?<', r.i)) r.i = r.src.indexOf('>', r.i) + 1
      const inner = alternation(r)
      if (r.peek() !== ')') r.fail('unclosed group')
      r.i++
      if (look) {
        // Zero width: what it reads counts as reach past the match, never as match length.
        lookaround = Math.max(lookaround, inner.match + inner.lookaround)
        width = 0
      } else {
        lookaround = Math.max(lookaround, inner.lookaround)
        width = inner.match
      }
    } else if (c === '[') {
      charClass(r)
      width = 1
    } else if (c === '\\') {
      r.i++
      width = escape(r)
    } else if (c === '^' || c === '$') {
      r.i++
      width = 0
    } else if (c === '*' || c === '+' || c === '?') {
      r.fail('quantifier without an atom')
    } else {
      r.i++
      width = 1
    }
    match += width * quantifier(r)
  }
  return { match, lookaround }
}

/** The reach of one regex source. Throws when a quantifier is unbounded. */
export function patternReach(source: string): PatternReach {
  const r = new Reader(source)
  const reach = alternation(r)
  if (r.i !== source.length) r.fail('unbalanced )')
  return reach
}

/** The most code units any rule's match plus its lookahead can span: the chunk overlap needed. */
export function maxRuleReach(rules: readonly SecretRule[]): number {
  let max = 0
  for (const rule of rules) {
    const { match, lookaround } = patternReach(rule.pattern)
    max = Math.max(max, match + lookaround)
  }
  return max
}
