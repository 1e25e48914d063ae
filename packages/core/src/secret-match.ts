import { createHash } from 'node:crypto'
import { DOCUMENTED_CLIENT_KEYS } from './keys'
import { SECRET_RULES, type SecretRule } from './secret-rules'

/**
 * The matcher over the secret rule table: one pass of a prefix filter over the text, then each
 * candidate checked with its rule's anchored pattern. The CI scanner (`gatehouse-check secrets`)
 * and the gateway's outbound secret detection both find credentials with it, so what CI calls a
 * credential and what the gateway refuses to forward are the same thing.
 *
 * Written here rather than taken from a library: the scanners on npm either run unbounded regexes
 * (super-linear on hostile input, which a gateway cannot afford on a client's body) or read files
 * themselves; this needs linear time on any string and positions of the raw match.
 */

/** One credential found in a text. Holds the raw credential: never print it, mask it. */
export interface SecretMatch {
  readonly rule: SecretRule
  /** Index of the reported credential's first character. */
  readonly start: number
  /** Index just past its last character. */
  readonly end: number
  /** The reported credential (the value alone for keyword rules such as `aws_secret_access_key = …`). */
  readonly secret: string
  /** Its random part (the rule's group 1), what masking must hide. */
  readonly body: string
}

/**
 * Words that mark a documentation placeholder rather than a credential. Random base62 text
 * contains one of these with a probability below 1e-4, so a real key is practically never skipped.
 */
const PLACEHOLDER_WORDS = ['example', 'placeholder', 'dummy', 'redacted', 'changeme', 'xxxx']

/**
 * Documented example credentials published by vendors (Stripe's docs test key), stored as sha256
 * digests so no key-shaped literal lives in this file; Gatehouse's own README keys are added below.
 */
const DOCUMENTED_EXAMPLE_DIGESTS: ReadonlyMap<string, number> = new Map([
  // digest → length of the key. Stripe's documentation test key (docs.stripe.com, "sk_test_4eC3…").
  ['2cafc0970149a84f3b9e62eaf169f36f59907a3b3e31f7b82e68c69cd27f7326', 32],
  // Stripe's older documentation test key ("sk_test_BQok…").
  ['f2d6ca16515033e5dce14eba840b979d27b5cbae24bb3e5bf484339667f86397', 32],
])

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex')

interface CompiledRule {
  readonly rule: SecretRule
  readonly re: RegExp
  /** The literal text every match starts with (`sk-ant-api`), checked before running `re`. */
  readonly lead: string
}

/** The literal characters a pattern starts with, up to its first regex operator. */
function literalLead(pattern: string, flags: string): string {
  if (flags.includes('i')) return ''
  const m = /^[^\\[\](){}.*+?|^$]*/.exec(pattern)
  return m ? m[0] : ''
}

/** Shannon entropy in bits per character. */
export function shannonEntropy(s: string): number {
  if (s.length === 0) return 0
  const ascii = new Uint32Array(128)
  let other: Map<number, number> | undefined
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 128) ascii[c]!++
    else (other ??= new Map()).set(c, (other.get(c) ?? 0) + 1)
  }
  let h = 0
  const add = (n: number): void => {
    const p = n / s.length
    h -= p * Math.log2(p)
  }
  for (const n of ascii) if (n > 0) add(n)
  if (other) for (const n of other.values()) add(n)
  return h
}

/** Long runs of one character (`xxxxxx`) or of consecutive characters (`abcdef`, `654321`). */
function hasFillerRun(s: string, limit = 6): boolean {
  let same = 1
  let up = 1
  let down = 1
  for (let i = 1; i < s.length; i++) {
    const d = s.charCodeAt(i) - s.charCodeAt(i - 1)
    same = d === 0 ? same + 1 : 1
    up = d === 1 ? up + 1 : 1
    down = d === -1 ? down + 1 : 1
    if (same >= limit || up >= limit || down >= limit) return true
  }
  return false
}

/**
 * True when the random part of a candidate is not random: a placeholder word, a filler run
 * (`sk-xxxxxxxx…`, `abcdef…`) or too little entropy for its length.
 */
export function looksLikeFiller(body: string, runCheck = true): boolean {
  const lower = body.toLowerCase()
  for (const w of PLACEHOLDER_WORDS) if (lower.includes(w)) return true
  if (runCheck && hasFillerRun(body)) return true
  const threshold = body.length < 24 ? 2.5 : 3.0
  return shannonEntropy(body) < threshold
}

/** A letter, digit, `+` or `/`: a character that continues a token or a base64 blob. */
function isBlobChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 43 /* + */ || c === 47 /* / */
}

/**
 * What precedes `at`: NONE, a `/` or `+` (SLASH), or a letter or digit (WORD), the letter of an
 * escape (`\\n`, `\\t`, `\\r`) counting as NONE.
 */
const NONE = 0
const SLASH = 1
const WORD = 2
function tokenBefore(text: string, at: number): number {
  if (at === 0) return NONE
  const c = text.charCodeAt(at - 1)
  if (!isBlobChar(c)) return NONE
  if (c === 43 || c === 47) return SLASH
  const prev = text[at - 1]
  return (prev === 'n' || prev === 'r' || prev === 't') && at >= 2 && text[at - 2] === '\\' ? NONE : WORD
}

/**
 * A prefix with a `_`, `-` or `.` (`ghp_`, `glpat-`, `sk-`) cannot occur inside a base64 blob (whose
 * alphabet has none of them), so after a `/` or `+` it starts a credential: a URL's userinfo
 * (`https://ghp_…@github.com`) or path (`/v1/sk-…`). A letters-only prefix (`AKIA`) there is taken
 * for a piece of base64.
 */
const SEPARATED_PREFIX = /[-_.]/

/** A package integrity string (`sha512-…`) ends just before `index`. */
function inIntegrity(text: string, index: number): boolean {
  return index >= 5 && /sha(?:1|256|384|512)-$/.test(text.slice(Math.max(0, index - 7), index))
}

function firstChars(source: string): string[] {
  if (source.startsWith('[')) {
    const end = source.indexOf(']')
    return [...source.slice(1, end)]
  }
  if (source.startsWith('\\')) return [source[1]!]
  return [source[0]!]
}

/**
 * A compiled matcher: the prefix filter and each rule's anchored pattern. Build one and reuse it;
 * it holds regex state, so one instance is not used by two scans at once (JavaScript runs one scan
 * at a time per thread, so a matcher per module is fine for synchronous callers).
 */
export class SecretMatcher {
  private readonly prefilter: RegExp
  private readonly byFirstChar: ReadonlyMap<string, readonly CompiledRule[]>
  private readonly documented: ReadonlySet<string>
  private readonly documentedLengths: ReadonlySet<number>
  /** The rules this matcher was built from. */
  readonly rules: readonly SecretRule[]

  constructor(rules: readonly SecretRule[] = SECRET_RULES) {
    this.rules = rules
    // One alternation of every prefix. (A lookbehind for the token boundary here would halve the
    // candidates but slow the whole pass more than checking each candidate's boundary costs.)
    const alternatives = [...new Set(rules.flatMap((r) => r.prefixes))]
    this.prefilter = new RegExp(alternatives.length ? alternatives.join('|') : '(?!)', 'g')
    const map = new Map<string, CompiledRule[]>()
    for (const rule of rules) {
      const flags = rule.flags ?? ''
      const compiled: CompiledRule = { rule, re: new RegExp(rule.pattern, `y${flags}`), lead: literalLead(rule.pattern, flags) }
      for (const c of new Set(rule.prefixes.flatMap(firstChars))) {
        const list = map.get(c) ?? []
        list.push(compiled)
        map.set(c, list)
      }
    }
    this.byFirstChar = map
    this.documented = new Set([...DOCUMENTED_EXAMPLE_DIGESTS.keys(), ...DOCUMENTED_CLIENT_KEYS.map(sha256)])
    this.documentedLengths = new Set([...DOCUMENTED_EXAMPLE_DIGESTS.values(), ...DOCUMENTED_CLIENT_KEYS.map((k) => k.length)])
  }

  /** Calls `visit` for every credential in `text`, in order of position; matches never overlap. */
  forEach(text: string, visit: (match: SecretMatch) => void): void {
    const prefilter = this.prefilter
    prefilter.lastIndex = 0
    let m: RegExpExecArray | null
    while ((m = prefilter.exec(text)) !== null) {
      const at = m.index
      const consumed = this.matchAt(text, at, visit)
      prefilter.lastIndex = consumed > 0 ? at + consumed : at + 1
    }
  }

  /** Every credential in `text`, in order of position. */
  findAll(text: string): SecretMatch[] {
    const out: SecretMatch[] = []
    this.forEach(text, (match) => out.push(match))
    return out
  }

  /** The first rule that matches at `at` (reported through `visit` unless filler); the length it consumed. */
  private matchAt(text: string, at: number, visit: (match: SecretMatch) => void): number {
    // Inside a longer token (a base64 blob, an identifier): not a credential of its own.
    const before = tokenBefore(text, at)
    for (const { rule, re, lead } of this.byFirstChar.get(text[at]!) ?? []) {
      if (before === WORD && rule.boundary !== false) continue
      if (lead.length > 1 && !text.startsWith(lead, at)) continue
      re.lastIndex = at
      const r = re.exec(text)
      if (r === null) continue
      const whole = r[0]
      const body = r[1] ?? whole
      if (rule.verify !== undefined && !rule.verify(rule.reportBody === true ? body : whole)) continue
      if (before === SLASH && rule.boundary !== false && !SEPARATED_PREFIX.test(whole.slice(0, whole.length - body.length))) continue
      if (inIntegrity(text, at) || (rule.fillerCheck !== false && looksLikeFiller(body, rule.runCheck !== false))) return whole.length
      const secret = rule.reportBody === true ? body : whole
      if (this.documentedLengths.has(secret.length) && this.documented.has(sha256(secret))) return whole.length
      const start = rule.reportBody === true ? at + whole.length - body.length : at
      visit({ rule, start, end: start + secret.length, secret, body })
      return whole.length
    }
    return 0
  }
}
