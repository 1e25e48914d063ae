import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import YAML from 'yaml'
import { loadScript, readRepoFile, root, run, scriptsDir } from './deploy-helpers'

type Json = Record<string, unknown>

interface Decision {
  ok: boolean
  protectedFiles: string[]
  approvers?: string[]
  problems: string[]
  notes?: string[]
}
interface PathGuard {
  decide(input: {
    files: string[]
    codeowners: string
    reviews: Array<{ user: { login: string }; state: string; commit_id: string; submitted_at: string }>
    headSha: string
    author: string
    teamMembers?: Record<string, string[]>
    requiredApprovals?: number
  }): Decision
  parseCodeowners(text: string): Array<{ pattern: string; owners: string[] }>
  ownersOf(rules: Array<{ pattern: string; owners: string[] }>, file: string): string[]
  patternToRegExp(pattern: string): RegExp
  PROTECTED: string[]
}
const guard = loadScript(join(scriptsDir, 'path-guard.js')) as PathGuard

const workflowsDir = join(root, '.github', 'workflows')
const workflowFiles = readdirSync(workflowsDir).filter((f) => /\.ya?ml$/.test(f))
const OURS = ['path-guard.yml', 'security.yml', 'release.yml']
const rootScripts = (JSON.parse(readRepoFile('package.json')) as { scripts: Record<string, string> }).scripts

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)
const steps = (job: Json): Json[] => (Array.isArray(job.steps) ? (job.steps as Json[]) : [])
const jobsOf = (doc: Json): Array<[string, Json]> => Object.entries((doc.jobs ?? {}) as Record<string, Json>)

/** A repository path a `node`/`bash` command runs exists (a dist/*.js file may stand for its src/*.ts). */
function repoPathExists(p: string): boolean {
  if (existsSync(join(root, p))) return true
  const m = /^packages\/([^/]+)\/dist\/(.+)\.js$/.exec(p)
  return m !== null && existsSync(join(root, 'packages', m[1]!, 'src', `${m[2]}.ts`))
}

/** What is wrong with the `run:` scripts of a workflow: missing scripts and files. */
function runProblems(doc: Json): string[] {
  const problems: string[] = []
  for (const [jobName, job] of jobsOf(doc)) {
    for (const step of steps(job)) {
      if (typeof step.run !== 'string' || step['working-directory']) continue
      for (const line of step.run.split('\n')) {
        for (const command of line.split(/&&|\|\||;|\|/)) {
          const words = command
            .trim()
            .replace(/^(?:[A-Z_]+=\S*\s+)+/, '')
            .split(/\s+/)
            .map((w) => w.replace(/^["']|["']$/g, ''))
          const [cmd, a1, a2] = words
          const where = `${jobName}: ${command.trim()}`
          if (
            (cmd === 'node' || cmd === 'bash' || cmd === 'sh') &&
            a1 &&
            !a1.startsWith('-') &&
            !a1.includes('$')
          ) {
            if (!repoPathExists(a1)) problems.push(`${where}: ${a1} does not exist`)
          }
          if (
            cmd === 'npm' &&
            (a1 === 'run' || a1 === 'run-script') &&
            a2 &&
            !a2.startsWith('-') &&
            !(a2 in rootScripts)
          ) {
            problems.push(`${where}: package.json has no script "${a2}"`)
          }
          if (cmd === 'npm' && (a1 === 'test' || a1 === 't') && !('test' in rootScripts))
            problems.push(`${where}: package.json has no test script`)
        }
      }
    }
  }
  return problems
}

const PINNED = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_./-]+@[0-9a-f]{40}$/

/** Every `uses:` pinned to a full commit SHA with a `# vX.Y.Z` comment beside it. */
function pinProblems(doc: Json, raw: string): string[] {
  const problems: string[] = []
  for (const [jobName, job] of jobsOf(doc)) {
    const uses = [
      ...(typeof job.uses === 'string' ? [job.uses] : []),
      ...steps(job).flatMap((s) => (typeof s.uses === 'string' ? [s.uses] : [])),
    ]
    for (const u of uses) {
      if (u.startsWith('./')) continue
      if (!PINNED.test(u)) {
        problems.push(`${jobName}: ${u} is not pinned to a 40-character commit SHA`)
        continue
      }
      const escaped = u.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
      if (!new RegExp(`${escaped}\\s+#\\s*v\\d+\\.\\d+\\.\\d+\\b`).test(raw))
        problems.push(`${jobName}: ${u} has no "# vX.Y.Z" comment`)
    }
  }
  return problems
}

const readOnly = (p: unknown): boolean =>
  (isObject(p) && Object.values(p).every((v) => v === 'read' || v === 'none')) || p === 'read-all'

/** Every job has its own `permissions`, or inherits read-only ones from the top level. */
function permissionProblems(doc: Json, strict: boolean): string[] {
  const problems: string[] = []
  if (strict && !(isObject(doc.permissions) && Object.keys(doc.permissions).length === 0))
    problems.push('top-level permissions must be {}')
  if (doc.permissions !== undefined && !readOnly(doc.permissions))
    problems.push('top-level permissions grant write')
  for (const [jobName, job] of jobsOf(doc)) {
    if (job.permissions === undefined) {
      if (strict || doc.permissions === undefined || !readOnly(doc.permissions))
        problems.push(`${jobName}: no permissions`)
      continue
    }
    if (job.permissions === 'write-all') problems.push(`${jobName}: write-all`)
  }
  return problems
}

const docs = Object.fromEntries(
  workflowFiles.map((f) => {
    const raw = readFileSync(join(workflowsDir, f), 'utf8')
    return [f, { raw, doc: YAML.parse(raw) as Json }]
  }),
)

describe('.github/workflows: what each runs, pinned and least-privilege', () => {
  it('has the path guard, security and release workflows next to ci.yml', () => {
    expect(workflowFiles).toEqual(expect.arrayContaining(['ci.yml', ...OURS]))
  })

  it.each(workflowFiles)('%s: every run: script references npm scripts and files that exist', (f) => {
    expect(runProblems(docs[f]!.doc)).toEqual([])
  })

  it.each(workflowFiles)('%s: every uses: is pinned to a full commit SHA with its version', (f) => {
    expect(pinProblems(docs[f]!.doc, docs[f]!.raw)).toEqual([])
  })

  it.each(workflowFiles)('%s: every job has least-privilege permissions', (f) => {
    expect(permissionProblems(docs[f]!.doc, OURS.includes(f))).toEqual([])
  })

  it('widens a permission only in the job whose steps use it', () => {
    const why: Record<string, (job: Json) => boolean> = {
      'id-token': (job) =>
        steps(job).some((s) => /cosign-installer/.test(String(s.uses)) || /--provenance/.test(String(s.run))),
      packages: (job) =>
        steps(job).some(
          (s) =>
            /docker\/login-action/.test(String(s.uses)) &&
            (s.with as Json | undefined)?.registry === 'ghcr.io',
        ),
      contents: (job) => steps(job).some((s) => /softprops\/action-gh-release/.test(String(s.uses))),
    }
    const unjustified: string[] = []
    for (const f of OURS) {
      for (const [jobName, job] of jobsOf(docs[f]!.doc)) {
        for (const [scope, level] of Object.entries((job.permissions ?? {}) as Record<string, string>)) {
          if (level !== 'write') continue
          const check = why[scope]
          if (!check || !check(job)) unjustified.push(`${f} ${jobName}: ${scope}: write`)
        }
      }
    }
    expect(unjustified).toEqual([])
  })

  it('pins each action to one SHA and one version across every workflow', () => {
    const seen = new Map<string, Set<string>>()
    for (const f of workflowFiles) {
      for (const m of docs[f]!.raw.matchAll(/uses:\s*([^@\s]+)@([0-9a-f]{40})\s+#\s*(v[\d.]+)/g)) {
        const key = m[1]!
        if (!seen.has(key)) seen.set(key, new Set())
        seen.get(key)!.add(`${m[2]} ${m[3]}`)
      }
    }
    const inconsistent = [...seen].filter(([, v]) => v.size > 1).map(([k, v]) => `${k}: ${[...v].join(', ')}`)
    expect(inconsistent).toEqual([])
    expect(seen.size).toBeGreaterThanOrEqual(10)
  })
})

describe('.github/workflows: the checks catch what they are for, and each workflow does its job', () => {
  describe('the checks themselves catch what they are for', () => {
    const bad = YAML.parse(`
permissions: { contents: write }
jobs:
  a:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-node@49933ea5288caeca8642d1e84afbd3f7d6820020
      - run: npm run no-such-script && node scripts/no-such-file.js
      - run: bash .ci/missing && node -e 'console.log(1)' && node "$RUNNER_TEMP/x.js"
`) as Json
    it('a missing npm script or file', () => {
      expect(runProblems(bad)).toEqual([
        'a: npm run no-such-script: package.json has no script "no-such-script"',
        'a: node scripts/no-such-file.js: scripts/no-such-file.js does not exist',
        'a: bash .ci/missing: .ci/missing does not exist',
      ])
    })
    it('a tag instead of a SHA, and a SHA without its version', () => {
      expect(pinProblems(bad, 'uses: actions/setup-node@49933ea5288caeca8642d1e84afbd3f7d6820020\n')).toEqual(
        [
          'a: actions/checkout@v4 is not pinned to a 40-character commit SHA',
          'a: actions/setup-node@49933ea5288caeca8642d1e84afbd3f7d6820020 has no "# vX.Y.Z" comment',
        ],
      )
    })
    it('write permissions at the top level and jobs without their own', () => {
      expect(permissionProblems(bad, true)).toEqual([
        'top-level permissions must be {}',
        'top-level permissions grant write',
        'a: no permissions',
      ])
    })
  })

  it('security.yml scans secrets and permissions with gatehouse-check, audits production dependencies, runs Trivy, weekly', () => {
    const { doc, raw } = docs['security.yml']!
    const on = doc.on as Json
    const cron = String(((on.schedule as Json[])[0] as Json).cron)
    expect(cron.split(/\s+/)).toHaveLength(5)
    expect(cron.split(/\s+/)[4]).toMatch(/^[0-6]$/) // one day a week
    expect(raw).toContain('node packages/security-check/dist/cli.js secrets')
    expect(raw).toMatch(/node packages\/security-check\/dist\/cli\.js permissions "\$work\/auths"/)
    expect(raw).toContain('npm audit --omit=dev --audit-level=high')
    const trivy = jobsOf(doc)
      .flatMap(([, j]) => steps(j))
      .find((s) => String(s.uses).startsWith('aquasecurity/trivy-action@'))
    expect((trivy?.with as Json)['scan-type']).toBe('fs')
    expect((trivy?.with as Json)['exit-code']).toBe('1')
  })

  it('release.yml publishes with provenance, checksums, signs keylessly, makes an SBOM and a two-platform image', () => {
    const { doc, raw } = docs['release.yml']!
    expect(((doc.on as Json).push as Json).tags).toEqual(['v*.*.*'])
    expect(raw).toMatch(/npm publish "\.\/\$tarball" --provenance --access public/)
    expect(raw).toContain('sha256sum -- * > SHA256SUMS')
    expect(raw).toContain('cosign sign-blob --yes --bundle SHA256SUMS.sigstore.json SHA256SUMS')
    expect(raw).toContain('cosign sign --yes "$IMAGE@$DIGEST"')
    expect(raw).toContain('npm sbom --omit=dev --sbom-format cyclonedx')
    const push = jobsOf(doc)
      .flatMap(([, j]) => steps(j))
      .find((s) => String(s.uses).startsWith('docker/build-push-action@'))
    expect((push?.with as Json).platforms).toBe('linux/amd64,linux/arm64')
    expect(String((push?.with as Json)['build-args'])).toContain(
      'RUNTIME_IMAGE=${{ steps.base.outputs.runtime }}',
    )
    // The publish job checks the checksums of exactly what it publishes.
    const npmJob = (doc.jobs as Record<string, Json>).npm!
    expect(String(steps(npmJob).at(-1)?.run)).toMatch(/^sha256sum -c SHA256SUMS\n/)
  })

  it('path-guard.yml runs the guard from the base branch with read-only access', () => {
    const { doc } = docs['path-guard.yml']!
    expect(Object.keys(doc.on as Json).sort()).toEqual(['pull_request_review', 'pull_request_target'])
    const job = (doc.jobs as Record<string, Json>)['code-owner-approval']!
    expect(job.permissions).toEqual({ contents: 'read', 'pull-requests': 'read' })
    const checkout = steps(job).find((s) => String(s.uses).startsWith('actions/checkout@'))!
    expect((checkout.with as Json).ref).toBe('${{ github.event.pull_request.base.sha }}')
    expect((checkout.with as Json)['persist-credentials']).toBe(false)
    expect(steps(job).at(-1)?.run).toBe('node scripts/path-guard.js')
  })
})


describe('.github/CODEOWNERS', () => {
  const rules = guard.parseCodeowners(readRepoFile('.github/CODEOWNERS'))
  const general = guard.ownersOf(rules, 'README.md')

  it.each(['credential-vault', 'client-auth', 'request-guard'])(
    'gives packages/%s/** its own code owners',
    (pkg) => {
      for (const f of [
        `packages/${pkg}/src/index.ts`,
        `packages/${pkg}/package.json`,
        `packages/${pkg}/test/deep/x.test.ts`,
      ]) {
        const owners = guard.ownersOf(rules, f)
        expect(owners.length).toBeGreaterThan(0)
        expect(owners).not.toEqual(general)
      }
    },
  )

  it('covers the guard itself, the workflows and what ships', () => {
    const security = guard.ownersOf(rules, 'packages/client-auth/src/index.ts')
    for (const f of [
      '.github/workflows/path-guard.yml',
      '.github/CODEOWNERS',
      'scripts/path-guard.js',
      'Dockerfile',
      'seccomp-profile.json',
      'package-lock.json',
    ]) {
      expect(guard.ownersOf(rules, f)).toEqual(security)
    }
  })

  it('is what the guard protects: the three packages and nothing else', () => {
    expect(guard.PROTECTED).toEqual([
      'packages/credential-vault/**',
      'packages/client-auth/**',
      'packages/request-guard/**',
    ])
  })

  it('matches patterns the way GitHub does', () => {
    expect(guard.patternToRegExp('docs/*').test('docs/a.md')).toBe(true)
    expect(guard.patternToRegExp('docs/*').test('docs/a/b.md')).toBe(false)
    expect(guard.patternToRegExp('apps/').test('x/apps/y.ts')).toBe(true)
    expect(guard.patternToRegExp('/apps/').test('x/apps/y.ts')).toBe(false)
    expect(guard.patternToRegExp('*.js').test('a/b/c.js')).toBe(true)
    expect(guard.patternToRegExp('/packages/client-auth/').test('packages/client-auth-extra/x.ts')).toBe(
      false,
    )
  })
})

const head = 'a'.repeat(40)
const old = 'b'.repeat(40)
const codeowners =
  '* @org/maintainers\n/packages/client-auth/ @alice @org/security\n/packages/request-guard/ @alice\n'
const review = (login: string, state: string, commit = head, at = '2026-01-01T00:00:00Z') => ({
  user: { login },
  state,
  commit_id: commit,
  submitted_at: at,
})
const base = { codeowners, headSha: head, author: 'mallory', reviews: [] as ReturnType<typeof review>[] }

describe('scripts/path-guard.js: approvals', () => {
  it('lets a pull request through that changes no protected path', () => {
    const d = guard.decide({ ...base, files: ['packages/hsts/src/index.ts', 'README.md'] })
    expect(d).toMatchObject({ ok: true, protectedFiles: [] })
  })

  it('blocks a protected change nobody approved, naming the file and its owners', () => {
    const d = guard.decide({ ...base, files: ['packages/client-auth/src/keys.ts'] })
    expect(d.ok).toBe(false)
    expect(d.problems).toEqual([
      `packages/client-auth/src/keys.ts: needs 1 approval(s) on ${head.slice(0, 12)} from @alice @org/security (has 0)`,
    ])
  })

  it('does not count an approval by someone who is not a code owner', () => {
    const d = guard.decide({
      ...base,
      files: ['packages/request-guard/src/x.ts'],
      reviews: [review('bob', 'APPROVED')],
    })
    expect(d.ok).toBe(false)
  })

  it('passes with a code owner approval of the head commit', () => {
    const d = guard.decide({
      ...base,
      files: ['packages/request-guard/src/x.ts', 'README.md'],
      reviews: [review('Alice', 'APPROVED')],
    })
    expect(d).toMatchObject({
      ok: true,
      protectedFiles: ['packages/request-guard/src/x.ts'],
      approvers: ['alice'],
    })
  })

  it('does not count an approval of an earlier commit, and says so', () => {
    const d = guard.decide({
      ...base,
      files: ['packages/request-guard/src/x.ts'],
      reviews: [review('alice', 'APPROVED', old)],
    })
    expect(d.ok).toBe(false)
    expect(d.notes).toEqual(['approvals of an earlier commit do not count: @alice'])
  })

  it('blocks when the code owner later requested changes', () => {
    const d = guard.decide({
      ...base,
      files: ['packages/request-guard/src/x.ts'],
      reviews: [
        review('alice', 'APPROVED', head, '2026-01-01T00:00:00Z'),
        review('alice', 'CHANGES_REQUESTED', head, '2026-01-02T00:00:00Z'),
      ],
    })
    expect(d.ok).toBe(false)
    expect(d.problems).toContain('changes requested by code owner @alice')
  })

  it('keeps an approval after a later comment', () => {
    const d = guard.decide({
      ...base,
      files: ['packages/request-guard/src/x.ts'],
      reviews: [
        review('alice', 'APPROVED', head, '2026-01-01T00:00:00Z'),
        review('alice', 'COMMENTED', head, '2026-01-02T00:00:00Z'),
      ],
    })
    expect(d.ok).toBe(true)
  })
})

describe('scripts/path-guard.js: teams, authors, unowned files and the command', () => {
  it('expands team owners only from known membership, failing closed otherwise', () => {
    const files = ['packages/client-auth/src/keys.ts']
    const reviews = [review('carol', 'APPROVED')]
    const unknown = guard.decide({ ...base, files, reviews })
    expect(unknown.ok).toBe(false)
    expect(unknown.notes).toEqual([
      'team membership unknown for @org/security: set the PATH_GUARD_TOKEN secret (organisation members: read)',
    ])
    expect(guard.decide({ ...base, files, reviews, teamMembers: { 'org/security': ['Carol'] } }).ok).toBe(
      true,
    )
    expect(guard.decide({ ...base, files, reviews, teamMembers: { 'org/security': ['dave'] } }).ok).toBe(
      false,
    )
  })

  it('never counts the author, and honours a higher number of required approvals', () => {
    const files = ['packages/client-auth/src/keys.ts']
    expect(guard.decide({ ...base, author: 'alice', files, reviews: [review('alice', 'APPROVED')] }).ok).toBe(
      false,
    )
    const teamMembers = { 'org/security': ['carol'] }
    const one = guard.decide({
      ...base,
      files,
      reviews: [review('alice', 'APPROVED')],
      teamMembers,
      requiredApprovals: 2,
    })
    expect(one.ok).toBe(false)
    const two = guard.decide({
      ...base,
      files,
      reviews: [review('alice', 'APPROVED'), review('carol', 'APPROVED')],
      teamMembers,
      requiredApprovals: 2,
    })
    expect(two.ok).toBe(true)
  })

  it('blocks a protected file that CODEOWNERS (on the base branch) gives no owner', () => {
    const d = guard.decide({
      ...base,
      codeowners: '/packages/client-auth/ @alice\n',
      files: ['packages/credential-vault/src/vault.ts'],
      reviews: [review('alice', 'APPROVED')],
    })
    expect(d.problems).toEqual(['packages/credential-vault/src/vault.ts: no code owner in CODEOWNERS'])
  })

  it('as a command: exit 0 allowed, 1 blocked with an ::error:: annotation, 2 on bad input', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-guard-'))
    try {
      const input = (extra: object) => {
        const f = join(dir, `${Math.random()}.json`)
        writeFileSync(
          f,
          JSON.stringify({
            ...base,
            files: ['packages/credential-vault/src/vault.ts'],
            codeowners: '/packages/credential-vault/ @alice\n',
            ...extra,
          }),
        )
        return f
      }
      const script = join(scriptsDir, 'path-guard.js')
      const blocked = await run(process.execPath, [script, '--input', input({})])
      expect(blocked.code).toBe(1)
      expect(blocked.stdout).toContain('BLOCKED: packages/credential-vault/src/vault.ts: needs 1 approval(s)')
      expect(blocked.stdout).toContain('::error title=path-guard::')
      const allowed = await run(process.execPath, [
        script,
        '--input',
        input({ reviews: [review('alice', 'APPROVED')] }),
      ])
      expect(allowed.code).toBe(0)
      expect(allowed.stdout).toContain('approved by code owners')
      expect((await run(process.execPath, [script, '--input', join(dir, 'missing.json')])).code).toBe(2)
      expect((await run(process.execPath, [script, '--bogus'])).code).toBe(2)
      expect((await run(process.execPath, [script, '--input', input({ requiredApprovals: 0 })])).code).toBe(2)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})


describe('SECURITY.md', () => {
  const text = readRepoFile('SECURITY.md')
  it('says how to report a vulnerability privately', () => {
    expect(text).toMatch(/## Reporting a vulnerability/)
    expect(text).toMatch(/security\/advisories\/new/)
  })
  it('walks through verifying checksums, the keyless signature, npm provenance and the image', () => {
    for (const s of [
      'sha256sum -c SHA256SUMS',
      'cosign verify-blob',
      '--certificate-identity-regexp',
      '.github/workflows/release.yml@refs/tags/v',
      '--certificate-oidc-issuer https://token.actions.githubusercontent.com',
      'npm audit signatures',
      'cosign verify ghcr.io/gatehouse-dev/gatehouse',
    ]) {
      expect(text).toContain(s)
    }
    // The release workflow signs what SECURITY.md tells people to verify.
    expect(readRepoFile('.github/workflows/release.yml')).toContain('SHA256SUMS.sigstore.json')
    expect(text).toContain('SHA256SUMS.sigstore.json')
  })
})
