import { join, resolve } from 'node:path'
import { resolveScanSecretsConfig, type ScanSecretsOptions } from '../options'
import { CHUNK_BYTES, scanFile } from './chunked'
import { baselineKey, readBaseline, writeBaseline, type Baseline } from './baseline'
import { SecretScanner, type TextHit } from './engine'
import { readHoneytokenDigests } from './honeytokens'
import { collectFiles, displayPath, emptySkipped, type SkippedCounts } from './files'
import { SECRET_RULES } from './rules'
import { readStaged } from './staged'

/** One leaked credential. `match` is masked; the credential itself is never in a result. */
export interface SecretFinding {
  /** Path relative to `cwd`, forward slashes. */
  readonly file: string
  /** 1-based line. */
  readonly line: number
  /** 1-based column (UTF-16 code units). */
  readonly column: number
  /** 1-based column just past the credential. */
  readonly endColumn: number
  /** Rule id, e.g. `anthropic-api-key`. */
  readonly rule: string
  /** What the rule finds, e.g. `Anthropic API key`. */
  readonly description: string
  /** The credential, masked: `sk-ant-****`. */
  readonly match: string
  /** sha256 of the rule id and the credential; what a baseline records. */
  readonly fingerprint: string
  /** Present and true when the credential is one of the honeytokens given (`honeytokens`). */
  readonly honeytoken?: true
}

export interface ScanSecretsResult {
  /** True when there is no finding. */
  readonly ok: boolean
  readonly findings: SecretFinding[]
  /** Findings silenced on purpose: by a `gatehouse-check:allow` comment, or listed in the baseline. */
  readonly suppressed: { inline: number; baseline: number }
  /** Files (or, with `staged`, files with added lines) scanned. */
  readonly files: number
  /** Bytes scanned. */
  readonly bytes: number
  readonly skipped: SkippedCounts
  readonly staged: boolean
  readonly durationMs: number
}

const DESCRIPTIONS: ReadonlyMap<string, string> = new Map(SECRET_RULES.map((r) => [r.id, r.description]))

const toFinding = (file: string, h: TextHit): SecretFinding => ({
  file,
  line: h.line,
  column: h.column,
  endColumn: h.endColumn,
  rule: h.rule,
  description: DESCRIPTIONS.get(h.rule) ?? h.rule,
  match: h.match,
  fingerprint: h.fingerprint,
  ...(h.honeytoken ? { honeytoken: true as const } : {}),
})

/**
 * Scan text held in memory (a config value, a log line) for credentials. Findings silenced with
 * a `gatehouse-check:allow` comment are left out.
 */
export function scanText(text: string, options: { file?: string; firstLine?: number } = {}): SecretFinding[] {
  const scanner = new SecretScanner()
  const hits = scanner.scanText(text, options.firstLine === undefined ? {} : { firstLine: options.firstLine })
  return hits.filter((h) => !h.allowed).map((h) => toFinding(options.file ?? '-', h))
}

/**
 * Scan files, directories (honouring .gitignore) or the staged changes of a git repository for
 * leaked credentials. Every finding is masked. Throws GatehouseError for usage problems (a path that
 * does not exist, a bad baseline, `staged` outside a repository); findings are never thrown.
 */
export async function scanSecrets(options: ScanSecretsOptions = {}): Promise<ScanSecretsResult> {
  const started = performance.now()
  const config = resolveScanSecretsConfig(options)
  const baseline =
    config.baseline === undefined
      ? undefined
      : readBaseline(resolve(config.cwd, config.baseline), config.baseline)
  const honeytokens =
    config.honeytokens === undefined
      ? undefined
      : readHoneytokenDigests(resolve(config.cwd, config.honeytokens), config.honeytokens)
  const scanner = new SecretScanner(SECRET_RULES, honeytokens)
  const skipped = emptySkipped()
  const findings: SecretFinding[] = []
  const suppressed = { inline: 0, baseline: 0 }
  let files = 0
  let bytes = 0

  const accept = (file: string, hits: readonly TextHit[]): void => {
    for (const h of hits) {
      if (h.allowed) {
        suppressed.inline++
        continue
      }
      const f = toFinding(file, h)
      if (baseline?.has(baselineKey(f))) {
        suppressed.baseline++
        continue
      }
      findings.push(f)
    }
  }

  if (config.staged) {
    const { root, files: staged } = await readStaged(config.cwd, config.paths)
    for (const file of staged) {
      const display = displayPath(config.cwd, join(root, file.path))
      if (file.binary) {
        skipped.binary++
        continue
      }
      const size = file.hunks.reduce((n, h) => n + h.lines.reduce((m, l) => m + l.length + 1, 0), 0)
      if (size > config.maxFileSize) {
        skipped.tooLarge++
        continue
      }
      if (file.hunks.length === 0) continue
      files++
      bytes += size
      for (const hunk of file.hunks) {
        accept(display, scanner.scanText(hunk.lines.join('\n'), { firstLine: hunk.firstLine }))
      }
    }
  } else {
    const paths = await collectFiles(
      config.paths.length > 0 ? config.paths : ['.'],
      { cwd: config.cwd, gitignore: config.gitignore, exclude: config.exclude },
      skipped,
    )
    // One read buffer for the whole scan: a file of any size is read through it in chunks.
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES)
    for (const abs of paths) {
      const result = scanFile(abs, scanner, { maxFileSize: config.maxFileSize, buffer })
      if (result.kind !== 'text') {
        skipped[result.kind]++
        continue
      }
      files++
      bytes += result.bytes
      accept(displayPath(config.cwd, abs), result.hits)
    }
  }

  return {
    // A file left unread may hide a key: not ok, so CI does not pass on what it never saw.
    ok: findings.length === 0 && skipped.tooLarge === 0,
    findings,
    suppressed,
    files,
    bytes,
    skipped,
    staged: config.staged,
    durationMs: Math.round(performance.now() - started),
  }
}

/**
 * Write a baseline file that accepts the given findings, so later scans with `baseline` report
 * only new ones. Paths in the baseline are as the findings give them (relative to the scan's cwd).
 */
export function writeSecretsBaseline(path: string, findings: readonly SecretFinding[]): Baseline {
  return writeBaseline(path, findings)
}
