import { createHash } from 'node:crypto'
import { MASK, maskSecret, SecretMatcher } from '@gatehouse/core'
import { SECRET_RULES, type SecretRule } from './rules'

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex')

/** One credential found in a text, already masked. */
export interface TextHit {
  /** The rule that matched. */
  readonly rule: string
  /** 1-based line. */
  readonly line: number
  /** 1-based column of the first character, in UTF-16 code units. */
  readonly column: number
  /** 1-based column just past the last character (SARIF `endColumn`). */
  readonly endColumn: number
  /** The credential, masked (`sk-ant-****`): never the credential itself. */
  readonly match: string
  /** sha256 of `rule` and the credential: stable across line moves, used by baselines. */
  readonly fingerprint: string
  /** True when a `gatehouse-check:allow` comment silences it. */
  readonly allowed: boolean
  /** True when the credential's sha256 is one of the honeytoken digests the scanner was given. */
  readonly honeytoken: boolean
}

export interface ScanTextOptions {
  /** Line number of the text's first line. @default 1 */
  firstLine?: number
  /** Column of the text's first character, when the text starts inside a line. @default 1 */
  firstColumn?: number
  /** Report only credentials that start at or after this index (the rest is context). @default 0 */
  from?: number
  /** Report only credentials that start before this index. @default text.length */
  to?: number
}

/** How much of a line, from its start, is searched for an allow marker. */
export const ALLOW_SEARCH_LIMIT = 100_000

/** Marker comment that silences a finding on its own line. */
export const ALLOW_MARKER = 'gatehouse-check:allow'
/** Marker comment that silences a finding on the line after it. */
export const ALLOW_NEXT_LINE_MARKER = 'gatehouse-check:allow-next-line'
/** The short forms, as gitleaks users write `gitleaks:allow`: `gatehouse:allow`, `gatehouse:allow-next-line`. */
const SHORT_ALLOW = 'gatehouse:allow'
const SHORT_ALLOW_NEXT_LINE = 'gatehouse:allow-next-line'

/** Mask a credential for output. Prefers core's masking; never returns more than the rule's prefix. */
export function maskFinding(secret: string, body: string): string {
  const masked = maskSecret(secret)
  const prefix = secret.slice(0, secret.length - body.length).slice(0, 40)
  const probe = body.slice(0, 6)
  const informative = masked !== MASK || prefix === ''
  if (
    informative &&
    masked.includes(MASK) &&
    masked !== secret &&
    (probe.length < 6 || !masked.includes(probe))
  ) {
    return masked
  }
  return `${prefix}${MASK}`
}

/**
 * A compiled scanner: core's secret matcher, plus what a file report needs (line and column, the
 * masked match, a fingerprint for baselines, allow comments). Build one per scan and reuse it for
 * every file; it holds regex state, so it is not shared between concurrent scans.
 */
export class SecretScanner {
  private readonly matcher: SecretMatcher

  /** `honeytokens`: sha256 digests (hex) of decoy credentials; a hit on one says so. */
  constructor(
    rules: readonly SecretRule[] = SECRET_RULES,
    private readonly honeytokens: ReadonlySet<string> = new Set(),
  ) {
    this.matcher = new SecretMatcher(rules)
  }

  /** Every credential in `text`, masked, with line and column. */
  scanText(text: string, options: ScanTextOptions = {}): TextHit[] {
    const hits: TextHit[] = []
    let lineNo = options.firstLine ?? 1
    const firstColumn = options.firstColumn ?? 1
    const from = options.from ?? 0
    const to = options.to ?? text.length
    let lineCountedTo = 0
    let nextNl = -2 // position of the next newline at or after lineCountedTo; -2 = not looked yet
    // One allow-comment decision per line: a long line with many hits is read once, not per hit.
    let allowLine = -1
    let allowValue = false
    const allowedOnLine = (lineStart: number, lineEnd: number): boolean => {
      if (lineStart !== allowLine) {
        allowLine = lineStart
        allowValue = isAllowed(text, lineStart, lineEnd)
      }
      return allowValue
    }
    this.matcher.forEach(text, ({ rule, start, secret, body }) => {
      // Line and column, counted incrementally from the previous hit (each newline found once).
      if (nextNl === -2) nextNl = text.indexOf('\n')
      while (nextNl !== -1 && nextNl < start) {
        lineNo++
        lineCountedTo = nextNl + 1
        nextNl = text.indexOf('\n', lineCountedTo)
      }
      if (start < from || start >= to) return
      const lineStart = lineCountedTo
      const lineEnd = nextNl === -1 ? text.length : nextNl
      const column = start - lineStart + (lineStart === 0 ? firstColumn : 1)
      hits.push({
        rule: rule.id,
        line: lineNo,
        column,
        endColumn: column + secret.length,
        match: maskFinding(secret, rule.reportBody === true ? secret : body),
        fingerprint: sha256(`${rule.id}\0${secret}`),
        allowed: allowedOnLine(lineStart, lineEnd),
        honeytoken: this.honeytokens.size > 0 && this.honeytokens.has(sha256(secret)),
      })
    })
    return hits
  }
}

function isAllowed(text: string, lineStart: number, lineEnd: number): boolean {
  const line = text.slice(lineStart, Math.min(lineEnd, lineStart + ALLOW_SEARCH_LIMIT))
  if (line.includes(ALLOW_MARKER) || line.includes(SHORT_ALLOW)) return true
  if (lineStart === 0) return false
  const prevStart = text.lastIndexOf('\n', lineStart - 2) + 1
  const prev = text.slice(prevStart, lineStart)
  return prev.includes(ALLOW_NEXT_LINE_MARKER) || prev.includes(SHORT_ALLOW_NEXT_LINE)
}
