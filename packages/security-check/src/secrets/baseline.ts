import { readFileSync } from 'node:fs'
import { writeFileAtomicSync, GatehouseError } from '@gatehouse/core'
import { PKG, SecurityCheckErrorCodes } from '../errors'

/** One accepted finding. Holds a digest of the credential, never the credential. */
export interface BaselineEntry {
  readonly file: string
  readonly rule: string
  /** sha256 of the rule id and the credential, as in findings. */
  readonly fingerprint: string
  /** The masked match, so a reviewer can see what was accepted. */
  readonly match: string
}

export interface Baseline {
  readonly tool: 'gatehouse-check'
  readonly version: 1
  readonly findings: readonly BaselineEntry[]
}

const key = (e: { file: string; rule: string; fingerprint: string }): string =>
  `${e.file}\0${e.rule}\0${e.fingerprint}`

/** Read and check a baseline file; a missing or malformed one is a GH_SC_BASELINE_INVALID error. */
export function readBaseline(path: string, shown = path): Set<string> {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : 'is not valid JSON'
    throw new GatehouseError(
      SecurityCheckErrorCodes.GH_SC_BASELINE_INVALID,
      `${PKG}: baseline ${JSON.stringify(shown)} ${why}`,
      400,
    )
  }
  const findings = (parsed as { findings?: unknown } | null)?.findings
  const ok =
    parsed !== null &&
    typeof parsed === 'object' &&
    (parsed as { tool?: unknown }).tool === 'gatehouse-check' &&
    (parsed as { version?: unknown }).version === 1 &&
    Array.isArray(findings) &&
    findings.every(
      (f: unknown) =>
        f !== null &&
        typeof f === 'object' &&
        typeof (f as BaselineEntry).file === 'string' &&
        typeof (f as BaselineEntry).rule === 'string' &&
        typeof (f as BaselineEntry).fingerprint === 'string' &&
        /^[0-9a-f]{64}$/.test((f as BaselineEntry).fingerprint),
    )
  if (!ok) {
    throw new GatehouseError(
      SecurityCheckErrorCodes.GH_SC_BASELINE_INVALID,
      `${PKG}: baseline ${JSON.stringify(shown)} is not a gatehouse-check baseline ({"tool":"gatehouse-check","version":1,"findings":[{file,rule,fingerprint}]})`,
      400,
    )
  }
  return new Set((findings as BaselineEntry[]).map(key))
}

export const baselineKey = key

/**
 * Write a baseline that accepts every given finding. It is meant to be committed: it holds
 * digests and masked matches only, never a credential.
 */
export function writeBaseline(
  path: string,
  findings: ReadonlyArray<{ file: string; rule: string; fingerprint: string; match: string }>,
): Baseline {
  const seen = new Set<string>()
  const entries: BaselineEntry[] = []
  for (const f of findings) {
    const k = key(f)
    if (seen.has(k)) continue
    seen.add(k)
    entries.push({ file: f.file, rule: f.rule, fingerprint: f.fingerprint, match: f.match })
  }
  entries.sort((a, b) => (a.file === b.file ? (a.rule < b.rule ? -1 : 1) : a.file < b.file ? -1 : 1))
  const baseline: Baseline = { tool: 'gatehouse-check', version: 1, findings: entries }
  try {
    writeFileAtomicSync(path, `${JSON.stringify(baseline, null, 2)}\n`, 0o644)
  } catch (err) {
    throw new GatehouseError(
      SecurityCheckErrorCodes.GH_SC_BASELINE_INVALID,
      `${PKG}: cannot write baseline ${JSON.stringify(path)} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      400,
    )
  }
  return baseline
}
