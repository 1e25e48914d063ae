import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { SECRET_RULES } from './secrets/rules'
import type { ScanSecretsResult, SecretFinding } from './secrets/scan'

export type SecretsFormat = 'text' | 'json' | 'sarif'

/** This package's version, read from its package.json. */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as {
      version?: unknown
    }
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0'
  } catch {
    return '0.0.0'
  }
}

/** `1 file`, `2 files`, `1 directory`, `3 directories`. */
export const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KB`
  return `${n} B`
}

/** What a honeytoken finding says: it is a decoy, and where it is found is where it leaked from. */
export const HONEYTOKEN_NOTE = 'a decoy key that never authenticates; whoever has it got it from here, or put it here'

/** One line a finding: `path:line:column  rule  masked-match  (description)`. */
export function formatSecretsText(result: ScanSecretsResult): string {
  return result.findings
    .map((f) => `${f.file}:${f.line}:${f.column}  ${f.rule}  ${f.match}  (${f.honeytoken ? `HONEYTOKEN: ${HONEYTOKEN_NOTE}` : f.description})\n`)
    .join('')
}

/** The one-line summary every format prints (to stdout for text, to stderr for json and sarif). */
export function secretsSummary(result: ScanSecretsResult): string {
  const s = result.skipped
  const skippedParts = [
    s.ignored && `${s.ignored} ignored`,
    s.binary && `${s.binary} binary`,
    s.tooLarge && `${s.tooLarge} over --max-size (not scanned: raise or drop --max-size)`,
    s.symlink && `${plural(s.symlink, 'symlink')}`,
    s.special && `${s.special} special`,
    s.unreadable && `${s.unreadable} unreadable`,
  ].filter(Boolean)
  const what = result.staged ? 'staged' : 'scanned'
  const head = `${plural(result.findings.length, 'finding')} in ${plural(result.files, 'file')} ${what} (${formatBytes(result.bytes)}, ${result.durationMs} ms)`
  const skipped = skippedParts.length > 0 ? `; skipped ${skippedParts.join(', ')}` : ''
  const silenced =
    result.suppressed.inline + result.suppressed.baseline > 0
      ? `; silenced ${result.suppressed.inline} inline, ${result.suppressed.baseline} by baseline`
      : ''
  return `gatehouse-check secrets: ${head}${skipped}${silenced}\n`
}

/** `{"findings":[{"file","line","column","rule","match"}]}`, match masked. */
export function formatSecretsJson(result: ScanSecretsResult): string {
  const findings = result.findings.map((f) => ({
    file: f.file,
    line: f.line,
    column: f.column,
    rule: f.rule,
    match: f.match,
    ...(f.honeytoken ? { honeytoken: true } : {}),
  }))
  return `${JSON.stringify({ findings }, null, 2)}\n`
}

const encodeUri = (path: string): string => path.split('/').map(encodeURIComponent).join('/')

/** A SARIF 2.1.0 log for code-scanning uploads: one run, every rule, one result per finding. */
export function toSarif(findings: readonly SecretFinding[]): object {
  const index = new Map(SECRET_RULES.map((r, i) => [r.id, i]))
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'gatehouse-check',
            semanticVersion: packageVersion(),
            informationUri: 'https://github.com/gatehouse-dev/gatehouse/tree/main/packages/security-check',
            rules: SECRET_RULES.map((r) => ({
              id: r.id,
              name: r.id
                .split('-')
                .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
                .join(''),
              shortDescription: { text: `${r.description} committed to the repository` },
              fullDescription: {
                text: `A ${r.description} appears in the source. Anyone who can read the repository can use it.`,
              },
              help: {
                text: `Revoke the credential at its issuer and create a new one, remove it from the file and from git history, and load it from the environment or a secret store instead. Format: ${r.reference}`,
              },
              helpUri: r.reference,
              defaultConfiguration: { level: 'error' },
              properties: { tags: ['security', 'secret'], precision: 'high', 'security-severity': '9.0' },
            })),
          },
        },
        columnKind: 'utf16CodeUnits',
        originalUriBaseIds: {
          '%SRCROOT%': { description: { text: 'The directory gatehouse-check ran in.' } },
        },
        results: findings.map((f) => ({
          ruleId: f.rule,
          ruleIndex: index.get(f.rule) ?? 0,
          level: 'error',
          message: { text: f.honeytoken ? `Honeytoken (${f.description}, ${HONEYTOKEN_NOTE}) found: ${f.match}` : `${f.description} found: ${f.match}` },
          locations: [
            {
              physicalLocation: {
                artifactLocation: { uri: encodeUri(f.file), uriBaseId: '%SRCROOT%' },
                region: { startLine: f.line, startColumn: f.column, endColumn: f.endColumn },
              },
            },
          ],
          partialFingerprints: { 'gatehouseSecret/v1': f.fingerprint },
        })),
      },
    ],
  }
}

export function formatSecretsSarif(result: ScanSecretsResult): string {
  return `${JSON.stringify(toSarif(result.findings), null, 2)}\n`
}
