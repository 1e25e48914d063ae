/**
 * Secret masking: the one function every sink (audit log, application log, error bodies, metrics)
 * passes text through. A short, non-secret prefix is kept so an operator can tell what kind of
 * credential it was (`sk-ant-****`, `Bearer ****`, `gate_live_****`); everything else is replaced.
 *
 * Gatehouse writes its own here because the job is narrow and security-critical: the patterns must
 * match the credential formats this project handles, run in linear time on hostile input, and be
 * shared verbatim with the secret scanner's rule set.
 */

export const MASK = '****'

interface MaskRule {
  readonly name: string
  /** Global, linear-time pattern (no nested quantifiers). */
  readonly pattern: RegExp
  /** Produces the masked form of one match (a replacement pattern or a function). */
  readonly replace: string | ((match: string, ...groups: string[]) => string)
  /**
   * A literal every match contains: a text without it skips the rule. Rules whose pattern tries a
   * bounded run at every position (`[a-z0-9+.-]{1,20}://`) cost that bound times the length on a
   * long text that has none, so the check is worth its one scan.
   */
  readonly hint?: string
  /** A hand-written masker instead of `pattern` (see maskPrivateKeys). */
  readonly apply?: (input: string) => string
}

/** Keep the first group (the prefix), mask the rest. */
const keepGroup = (_m: string, prefix: string): string => `${prefix}${MASK}`
/**
 * The same as a replacement pattern: cheaper per match where a rule has many short matches (no
 * call each), but slower than the function on one very long match, so used only where a match is
 * bounded.
 */
const keepGroupPattern = `$1${MASK}`

/**
 * Known credential formats, most specific first. A run at the end of a pattern is written
 * `(?=[…]{n})[…]*` rather than `[…]{n,}`: the same matches, but V8 then runs the tail as a plain
 * loop instead of a backtracking one, about 20x faster on a long run such as `sk-ant-sk-ant-…`.
 */
const RULES: readonly MaskRule[] = [
  {
    name: 'pem-private-key',
    // What maskPrivateKeys does, as a pattern (kept for the scanner's shared rule table): with many
    // BEGIN lines and no END, this pattern rescans up to 10,000 characters after each one.
    pattern: /-----BEGIN ((?:[A-Z]+ )?PRIVATE KEY)-----[\s\S]{0,10000}?(?:-----END [A-Z ]{0,20}PRIVATE KEY-----|$)/g,
    replace: (_m, label: string) => `-----BEGIN ${label}-----${MASK}`,
    hint: 'PRIVATE KEY-----',
    apply: (input) => maskPrivateKeys(input),
  },
  { name: 'gatehouse-key', pattern: /\b(gate_(?:live|test)_)(?=[A-Za-z0-9_-]{8})[A-Za-z0-9_-]*/g, replace: keepGroup },
  { name: 'anthropic', pattern: /\b(sk-ant-)(?=[A-Za-z0-9_-]{8})[A-Za-z0-9_-]*/g, replace: keepGroup },
  {
    name: 'openai',
    // The lookahead rather than `{16,}` right after the optional group: V8 then runs the long
    // tail as a plain loop instead of a backtracking one (20x faster on a long run of `sk-sk-…`).
    pattern: /\b(sk-(?:proj-|svcacct-|admin-|None-)?)(?=[A-Za-z0-9_-]{16})[A-Za-z0-9_-]*/g,
    replace: keepGroup,
  },
  { name: 'stripe', pattern: /\b((?:sk|rk|pk)_(?:live|test)_)(?=[A-Za-z0-9]{10})[A-Za-z0-9]*/g, replace: keepGroup },
  { name: 'google', pattern: /\b(AIza)(?=[A-Za-z0-9_-]{30})[A-Za-z0-9_-]*/g, replace: keepGroup },
  { name: 'google-oauth', pattern: /\b(ya29\.)(?=[A-Za-z0-9_-]{10})[A-Za-z0-9_-]*/g, replace: keepGroup },
  { name: 'github', pattern: /\b(gh[pousr]_|github_pat_)(?=[A-Za-z0-9_]{20})[A-Za-z0-9_]*/g, replace: keepGroup },
  { name: 'gitlab', pattern: /\b(glpat-)(?=[A-Za-z0-9_-]{20})[A-Za-z0-9_-]*/g, replace: keepGroup },
  { name: 'aws', pattern: /\b((?:AKIA|ASIA))[0-9A-Z]{16}\b/g, replace: keepGroup },
  { name: 'slack', pattern: /\b(xox[abposr]-)(?=[A-Za-z0-9-]{10})[A-Za-z0-9-]*/g, replace: keepGroup },
  {
    name: 'slack-webhook',
    pattern: /(https:\/\/hooks\.slack\.com\/services\/)(?=[A-Za-z0-9/_-]{10})[A-Za-z0-9/_-]*/g,
    replace: keepGroup,
    hint: 'hooks.slack.com',
  },
  { name: 'xai', pattern: /\b(xai-)(?=[A-Za-z0-9]{20})[A-Za-z0-9]*/g, replace: keepGroup },
  { name: 'groq', pattern: /\b(gsk_)(?=[A-Za-z0-9]{20})[A-Za-z0-9]*/g, replace: keepGroup },
  { name: 'huggingface', pattern: /\b(hf_)(?=[A-Za-z0-9]{20})[A-Za-z0-9]*/g, replace: keepGroup },
  { name: 'npm', pattern: /\b(npm_)(?=[A-Za-z0-9]{30})[A-Za-z0-9]*/g, replace: keepGroup },
  { name: 'sendgrid', pattern: /\b(SG\.)[A-Za-z0-9_-]{16,}\.(?=[A-Za-z0-9_-]{16})[A-Za-z0-9_-]*/g, replace: keepGroup },
  {
    name: 'jwt',
    pattern: /\b(eyJ)[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{0,1000}/g,
    replace: keepGroup,
  },
  {
    // Authorization schemes in free text: "Bearer abc…", "Basic dXNl…".
    name: 'auth-scheme',
    pattern: /\b(Bearer|Basic)([ \t]{1,10})(?!\*{4})[A-Za-z0-9._~+/=-]{8,}(?![A-Za-z0-9._~+/=*-])/gi,
    replace: (_m, scheme: string, space: string) => `${scheme}${space}${MASK}`,
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

/**
 * Mask one value known to be a secret (a header value, a configured key).
 * Keeps a recognisable prefix for known formats and for auth schemes, nothing otherwise.
 */
export function maskSecret(value: string): string {
  if (value.length === 0) return value
  const masked = maskSecrets(value)
  if (masked !== value) return masked
  const scheme = /^(Bearer|Basic)\s+/i.exec(value)
  if (scheme) return `${scheme[1]} ${MASK}`
  // Unknown format: keep a prefix up to its first separator when it looks like one ("token-…").
  const sep = /^([A-Za-z]{2,12}[-_])./.exec(value)
  if (sep && value.length >= 16) return `${sep[1]}${MASK}`
  return MASK
}

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
    return applyRules(out)
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

/**
 * A quick test that a text could hold anything the rules mask: every rule's match contains one of
 * these literals. Most strings that pass through a sink (ids, addresses, event names) contain none,
 * and skip the rules entirely.
 */
const MAY_CONTAIN_SECRET =
  // Case-sensitive but for the two auth schemes (the only case-insensitive literals of the rules):
  // twice as fast as the same test with the i flag, and it runs on every string a sink writes.
  /sk-|[srp]k_|gate_|AIza|ya29\.|gh[pousr]_|github_pat_|glpat-|AKIA|ASIA|xox|hooks\.slack|xai-|gsk_|hf_|npm_|SG\.|eyJ|[Bb][Ee][Aa][Rr][Ee][Rr]|[Bb][Aa][Ss][Ii][Cc]|=|:\/\/|-----BEGIN/

/** The shortest text any rule masks: `&key=x`. */
const SHORTEST_MATCH = 6

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

function applyRules(input: string): string {
  if (input.length < SHORTEST_MATCH || !MAY_CONTAIN_SECRET.test(input)) return input
  let out = input
  for (const rule of RULES) {
    if (rule.hint !== undefined && !out.includes(rule.hint)) continue
    if (rule.apply) {
      out = rule.apply(out)
      continue
    }
    rule.pattern.lastIndex = 0
    if (rule.pattern.test(out)) {
      rule.pattern.lastIndex = 0
      out = typeof rule.replace === 'string' ? out.replace(rule.pattern, rule.replace) : out.replace(rule.pattern, rule.replace)
    }
  }
  return out
}

const MAX_DEPTH = 20

function maskDeep(input: unknown, text: (s: string) => string, depth: number): unknown {
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

const bigintAsText = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? v.toString() : v)

/** maskedJson's signal that a key was masked: the caller falls back to the copy. */
const KEY_MASKED = '\u0000key masked'

/** What maskedJson needs of a field name: its JSON text (undefined when masking changes it), and whether its value is a secret. */
interface KeyInfo {
  quoted: string | undefined
  sensitive: boolean
}
const KEY_CACHE_SIZE = 512

/** JSON text of maskDeep(input), written directly. Mirrors maskDeep and JSON.stringify case for case. */
function maskedJson(input: unknown, text: (s: string) => string, keyInfo: (k: string) => KeyInfo, depth: number): string | undefined {
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

const defaultMasker = createMasker()

/** Mask every credential found in a text (known formats, bearer tokens, query-string keys). */
export const maskSecrets = (input: string): string => applyRules(input)

/** Deep copy of any value with every secret masked. */
export const maskValue = defaultMasker.value

/** The names of the built-in rules, for documentation and tests. */
export const MASK_RULE_NAMES: readonly string[] = RULES.map((r) => r.name)
