import { SecretMatcher } from './secret-match'
import { SECRET_RULE_IDS, SECRET_RULES, type SecretRule } from './secret-rules'

/**
 * Secret masking: the one function every sink (audit log, application log, error bodies, metrics)
 * passes text through. A short, non-secret prefix is kept so an operator can tell what kind of
 * credential it was (`sk-ant-****`, `Bearer ****`, `gate_live_****`); everything else is replaced.
 *
 * Gatehouse writes its own here because the job is narrow and security-critical: credential formats
 * come from the secret rule table (SECRET_RULES, found with SecretMatcher, as the CI scanner and the
 * gateway's outbound detection find them), each in its looser masking form where it has one; beside
 * them the masker keeps what only it needs: whole PEM blocks, JWTs, Bearer and Basic values,
 * credentials in query strings and URL userinfo. Everything runs in linear time on hostile input.
 */

export const MASK = '****'

interface MaskRule {
  readonly name: string
  /** Global, linear-time pattern (no nested quantifiers). */
  readonly pattern: RegExp
  /**
   * The masked form of one match: a replacement pattern (`$1****`), or a function of the match
   * (`m[1]` is the first group).
   */
  readonly replace: string | ((m: RegExpExecArray) => string)
  /**
   * A literal every match contains: a text without it skips the rule. Rules whose pattern tries a
   * bounded run at every position (`[a-z0-9+.-]{1,20}://`) cost that bound times the length on a
   * long text that has none, so the check is worth its one scan.
   */
  readonly hint?: string
}

/** Keep the first group (the prefix), mask the rest. */
const keepGroup = (m: RegExpExecArray): string => `${m[1]!}${MASK}`
/**
 * The same as a replacement pattern, for String.prototype.replace: cheaper where a rule has many
 * short matches (`&token=a&token=a…`), so used where a match is short and bounded.
 */
const keepGroupPattern = `$1${MASK}`

/**
 * `input` with every match of the global `pattern` replaced, built in one forward pass: where a
 * function makes the masked form, String.prototype.replace slows down more than linearly on a long
 * text of many matches (a megabyte of `eyJ….….` heads), and a sink must not.
 */
function replaceEach(input: string, pattern: RegExp, replace: (m: RegExpExecArray) => string): string {
  let out = ''
  let from = 0
  let matched = false
  pattern.lastIndex = 0
  for (let m = pattern.exec(input); m !== null; m = pattern.exec(input)) {
    matched = true
    out += input.slice(from, m.index) + replace(m)
    from = m.index + m[0].length
    if (m[0].length === 0) pattern.lastIndex++
  }
  return matched ? out + input.slice(from) : input
}

/**
 * The rule table as the masker reads it: a rule's looser masking form (`maskPattern`) where it has
 * one, taken with no filler check and no `verify` (hiding a placeholder costs nothing; showing a
 * truncated key leaks it), and the rule itself elsewhere.
 */
function maskingRule(rule: SecretRule): SecretRule {
  if (rule.maskPattern === undefined) return rule
  return {
    id: rule.id,
    description: rule.description,
    prefixes: rule.prefixes,
    pattern: rule.maskPattern,
    ...(rule.flags === undefined ? {} : { flags: rule.flags }),
    ...(rule.boundary === undefined ? {} : { boundary: rule.boundary }),
    ...(rule.reportBody === undefined ? {} : { reportBody: rule.reportBody }),
    fillerCheck: false,
    reference: rule.reference,
  }
}

const TABLE = new SecretMatcher(SECRET_RULES.map(maskingRule))

/** Every credential of the rule table in a text, its random part replaced and its prefix (`sk-ant-`, `gate_live_`) kept. */
function maskCredentials(input: string): string {
  let out = ''
  let from = 0
  TABLE.forEach(input, ({ start, end, secret, body }) => {
    out += `${input.slice(from, start + secret.length - body.length)}${MASK}`
    from = end
  })
  return from === 0 ? input : out + input.slice(from)
}

/** What the rule table does not cover: tokens without a vendor prefix, found by where they stand. */
const GENERIC_RULES: readonly MaskRule[] = [
  {
    name: 'jwt',
    pattern: /\b(eyJ)[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{0,1000}/g,
    replace: keepGroup,
  },
  {
    // Authorization schemes in free text: "Bearer abc…", "Basic dXNl…".
    name: 'auth-scheme',
    pattern: /\b(Bearer|Basic)([ \t]{1,10})(?!\*{4})[A-Za-z0-9._~+/=-]{8,}(?![A-Za-z0-9._~+/=*-])/gi,
    replace: (m) => `${m[1]!}${m[2]!}${MASK}`,
  },
  {
    // Credentials in query strings and form bodies: ?key=…&api_key=….
    name: 'query-param',
    pattern:
      /([?&;](?:key|api[_-]?key|apikey|access[_-]?token|refresh[_-]?token|id[_-]?token|token|secret|client[_-]?secret|password|auth|signature|sig)=)(?!\*{4})[^&#\s"';]{1,4096}/gi,
    replace: keepGroupPattern,
    hint: '=',
  },
  {
    // URL userinfo: https://user:pass@host
    name: 'url-userinfo',
    pattern: /\b([a-z][a-z0-9+.-]{1,20}:\/\/[^\s:/@]{1,256}:)(?!\*{4})[^\s/@]{1,1024}(?=@)/gi,
    replace: keepGroup,
    hint: '://',
  },
]

/**
 * A quick test that a text could hold anything the generic rules mask: every match contains one
 * of these literals. Case-sensitive but for the two auth schemes (the only case-insensitive
 * literals): twice as fast as the same test with the i flag, and it runs on every string a sink writes.
 */
const MAY_CONTAIN_GENERIC = /eyJ|[Bb][Ee][Aa][Rr][Ee][Rr]|[Bb][Aa][Ss][Ii][Cc]|=|:\/\//

/** The shortest text any rule masks: `&key=x`. */
const SHORTEST_MATCH = 6

/** What every PEM private key's BEGIN line ends with. */
const PEM_HINT = 'PRIVATE KEY-----'

const PEM_BEGIN = /-----BEGIN ((?:[A-Z]+ )?PRIVATE KEY)-----/g
const PEM_END = /-----END [A-Z ]{0,20}PRIVATE KEY-----/g
const PEM_SPAN = 10_000

/**
 * The pem-private-key rule in one forward pass: each BEGIN line is masked through its END line (or
 * to the end of the text when that is within reach), as the pattern does. The END search never
 * goes back: the first END at or after a position is remembered, so a text of many BEGIN lines and
 * no END costs one scan, not one per BEGIN.
 */
function maskPrivateKeys(input: string): string {
  let out = ''
  let from = 0
  let endAt = -1 // start of the first END at or after endFrom; -2: none to the end of the text
  let endLen = 0
  PEM_BEGIN.lastIndex = 0
  for (let m = PEM_BEGIN.exec(input); m !== null; m = PEM_BEGIN.exec(input)) {
    const bodyStart = m.index + m[0].length
    if (endAt !== -2 && endAt < bodyStart) {
      PEM_END.lastIndex = bodyStart
      const e = PEM_END.exec(input)
      endAt = e ? e.index : -2
      endLen = e ? e[0].length : 0
    }
    let stop: number
    if (endAt >= 0 && endAt - bodyStart <= PEM_SPAN) stop = endAt + endLen
    else if (input.length - bodyStart <= PEM_SPAN) stop = input.length
    else continue // no END within reach: the pattern would not match here either
    out += `${input.slice(from, m.index)}-----BEGIN ${m[1]!}-----${MASK}`
    from = stop
    PEM_BEGIN.lastIndex = stop
  }
  return from === 0 ? input : out + input.slice(from)
}

/** Mask every credential found in a text: PEM blocks, the rule table's formats, then the generic rules. */
export function maskText(input: string): string {
  if (input.length < SHORTEST_MATCH) return input
  let out = maskCredentials(input.includes(PEM_HINT) ? maskPrivateKeys(input) : input)
  if (!MAY_CONTAIN_GENERIC.test(out)) return out
  for (const rule of GENERIC_RULES) {
    if (rule.hint !== undefined && !out.includes(rule.hint)) continue
    if (typeof rule.replace === 'function') out = replaceEach(out, rule.pattern, rule.replace)
    else {
      rule.pattern.lastIndex = 0
      if (rule.pattern.test(out)) out = out.replace(rule.pattern, rule.replace)
    }
  }
  return out
}

/** The names of the masking rules: whole PEM blocks, the rule table's ids, the generic rules. */
export const MASK_RULE_NAMES: readonly string[] = Object.freeze(['pem-private-key', ...SECRET_RULE_IDS, ...GENERIC_RULES.map((r) => r.name)])

/**
 * Mask one value known to be a secret (a header value, a configured key).
 * Keeps a recognisable prefix for known formats and for auth schemes, nothing otherwise.
 */
export function maskSecret(value: string): string {
  if (value.length === 0) return value
  const masked = maskText(value)
  if (masked !== value) return masked
  const scheme = /^(Bearer|Basic)\s+/i.exec(value)
  if (scheme) return `${scheme[1]} ${MASK}`
  // Unknown format: keep a prefix up to its first separator when it looks like one ("token-…").
  const sep = /^([A-Za-z]{2,12}[-_])./.exec(value)
  if (sep && value.length >= 16) return `${sep[1]}${MASK}`
  return MASK
}
