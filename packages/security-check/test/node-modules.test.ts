import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { runCli } from './helpers'

// The project's own dependencies, as `npm ci` installed them, are the false-positive bar: every
// finding in them is either a true positive recorded (by fingerprint, never the key) in the
// committed baseline, or a rule to fix. CI runs the same command from the repository root.
const ROOT = join(__dirname, '..', '..', '..')
const BASELINE = 'packages/security-check/ci/node-modules-baseline.json'

describe("the project's node_modules", () => {
  const paths = [
    'node_modules',
    ...readdirSync(join(ROOT, 'packages'))
      .map((p) => `packages/${p}/node_modules`)
      .filter((p) => existsSync(join(ROOT, p))),
  ]

  it('holds no finding beyond the committed baseline, and no file goes unread', async () => {
    // As CI runs it: node_modules is in .gitignore, but a directory named on purpose is read.
    const r = await runCli(['secrets', ...paths, '--baseline', BASELINE, '--format', 'json'], {
      cwd: ROOT,
    })
    expect(JSON.parse(r.stdout)).toEqual({ findings: [] })
    expect(r.code).toBe(0)
    const summary = /(\d+) files scanned \(([\d.]+) MB/.exec(r.stderr)
    expect(summary).not.toBeNull()
    expect(Number(summary![1])).toBeGreaterThan(10_000)
    expect(Number(summary![2])).toBeGreaterThan(100)
    // Binary files and the workspace links are skipped by design; nothing is skipped for size or
    // because it could not be read.
    expect(r.stderr).not.toMatch(/max-size|unreadable|special|ignored/)
    // Each accepted finding is used: a baseline entry that no longer matches is stale.
    const accepted = (JSON.parse(readFileSync(join(ROOT, BASELINE), 'utf8')) as { findings: unknown[] }).findings
    expect(r.stderr).toContain(`silenced 0 inline, ${accepted.length} by baseline`)
  }, 120_000) // about 7 s alone, but up to 28 s measured on the 2-core machine beside the rest of the suite

  it('has a baseline that records fingerprints and masked matches, never a key', () => {
    const baseline = JSON.parse(readFileSync(join(ROOT, BASELINE), 'utf8')) as {
      findings: Array<Record<string, string>>
    }
    expect(baseline.findings.length).toBeGreaterThan(0)
    for (const f of baseline.findings) {
      expect(Object.keys(f).sort()).toEqual(['file', 'fingerprint', 'match', 'rule'])
      expect(f.file).toMatch(/^(packages\/[^/]+\/)?node_modules\//)
      expect(f.fingerprint).toMatch(/^[0-9a-f]{64}$/)
      expect(f.match).toMatch(/\*\*\*\*$/)
    }
  })
})
