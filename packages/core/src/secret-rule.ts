/** The shape of one secret rule, and the boundary lookaheads the rule files share. */

export interface SecretRule {
  /** Stable id, used in reports, SARIF, baselines. */
  readonly id: string
  /** What was found, for people. */
  readonly description: string
  /** Regex sources that a candidate starts with; together they form the prefix filter. */
  readonly prefixes: readonly string[]
  /** Regex source of the whole credential; group 1 is the random part, at the end. */
  readonly pattern: string
  /** Extra regex flags (`i` for the keyword-anchored rules). */
  readonly flags?: string
  /**
   * The character before the match must not be a letter or digit, nor a `+` or `/` unless the
   * prefix holds a `_`, `-` or `.` (which base64 never does). @default true
   */
  readonly boundary?: boolean
  /** Report only group 1 (keyword-anchored rules, where the prefix is a variable name). @default false */
  readonly reportBody?: boolean
  /** Reject bodies with runs of one character or of consecutive characters. @default true */
  readonly runCheck?: boolean
  /**
   * Reject bodies that look like filler or placeholders: a run (see `runCheck`), a placeholder
   * word, too little entropy. @default true
   */
  readonly fillerCheck?: boolean
  /**
   * For the masker, which hides rather than reports: a looser regex source with the same
   * convention (group 1 is hidden, what comes before it is kept), so a truncated key or a test key
   * of one repeated letter is hidden too. It must match every credential `pattern` matches. The
   * masker uses it instead of `pattern`, with no filler check and no `verify`; the scanner never
   * does. Its tail is an open run of one character class with nothing after it, so a long run
   * costs one pass.
   */
  readonly maskPattern?: string
  /**
   * A check of the whole credential (`secret`) beyond its shape, such as a checksum: a candidate it
   * rejects is not a credential, and the next rule is tried. Must run in time linear in the length.
   */
  readonly verify?: (secret: string) => boolean
  /** Where the format is published, for the README and SARIF help. */
  readonly reference: string
}

// Token-boundary lookaheads for the common alphabets.
export const END_URLSAFE = '(?![A-Za-z0-9_-])'
export const END_ALNUM = '(?![A-Za-z0-9])'
export const END_HEX = '(?![A-Fa-f0-9])'

