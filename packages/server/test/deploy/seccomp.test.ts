/**
 * seccomp-profile.json: its shape, then the two checks that it is the profile Node really runs under:
 * (1) the syscalls the built server makes (traced with strace through start, TLS, proxying with DNS,
 * metrics and SIGTERM) are all allowed, and (2) the same workload passes with every server process
 * under the profile, loaded by scripts/seccomp-exec.py the way runc loads it.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  ensureBuiltAll,
  hasCommand,
  hasPythonSeccomp,
  isRoot,
  loadScript,
  root,
  run,
  scriptsDir,
} from './deploy-helpers'

interface Rule {
  names: string[]
  action: string
  errnoRet?: number
  args?: Array<{ index: number; value: number; valueTwo: number; op: string }>
  comment?: string
}
interface Profile {
  defaultAction: string
  defaultErrnoRet?: number
  architectures: string[]
  syscalls: Rule[]
}
interface Step {
  name: string
  ok: boolean
  detail?: string
}
interface Report {
  mode: string
  dns: boolean
  derived?: string[]
  denied?: string[]
  steps: Step[]
}
interface Derive {
  buildProfile(names: Set<string>, meta: { runs: number; node: string; arch: string }): Profile
  AARCH64_EQUIVALENTS: Record<string, string[]>
}

const derive = loadScript(join(scriptsDir, 'derive-seccomp.js')) as Derive
const profilePath = join(root, 'seccomp-profile.json')
const profile = JSON.parse(readFileSync(profilePath, 'utf8')) as Profile
const CLONE_THREAD = 0x00010000
const CLONE_NAMESPACES = 0x7e020000
const ENOSYS = 38

const rulesFor = (name: string) => profile.syscalls.filter((r) => r.names.includes(name))
const allowed = new Set(profile.syscalls.filter((r) => r.action === 'SCMP_ACT_ALLOW').flatMap((r) => r.names))
const enosys = new Set(
  profile.syscalls
    .filter((r) => r.action === 'SCMP_ACT_ERRNO' && r.errnoRet === ENOSYS)
    .flatMap((r) => r.names),
)

/** Run scripts/derive-seccomp.js and read its JSON report. */
async function deriveScript(
  args: string[],
): Promise<{ code: number | null; report: Report; stderr: string }> {
  const r = await run(
    process.execPath,
    [join(scriptsDir, 'derive-seccomp.js'), '--json', '--timeout', '80', ...args],
    { timeoutMs: 100_000 },
  )
  const last = r.stdout.trim().split('\n').at(-1) ?? ''
  let report: Report
  try {
    report = JSON.parse(last) as Report
  } catch {
    throw new Error(`derive-seccomp printed no report (exit ${r.code}):\n${r.stdout}\n${r.stderr}`)
  }
  return { code: r.code, report, stderr: r.stderr }
}
const failed = (steps: Step[]) => steps.filter((s) => !s.ok).map((s) => `${s.name}: ${s.detail ?? ''}`)

describe('seccomp-profile.json', () => {
  it('denies by default with EPERM, for x86_64 and aarch64', () => {
    expect(profile.defaultAction).toBe('SCMP_ACT_ERRNO')
    expect(profile.defaultErrnoRet ?? 1).toBe(1)
    expect(profile.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_AARCH64'])
  })

  it('allows execve (the runtime execs node after installing the filter), and says why', () => {
    const [rule] = rulesFor('execve')
    expect(rule).toMatchObject({ action: 'SCMP_ACT_ALLOW' })
    expect(rule!.comment).toMatch(/before it execs node/)
  })

  it('allows clone for threads only: CLONE_THREAD set, no namespace flag', () => {
    const rules = rulesFor('clone')
    expect(rules).toHaveLength(1)
    expect(rules[0]!.args).toEqual([
      { index: 0, value: CLONE_THREAD | CLONE_NAMESPACES, valueTwo: CLONE_THREAD, op: 'SCMP_CMP_MASKED_EQ' },
    ])
    expect(rulesFor('clone3')).toEqual([
      expect.objectContaining({ action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS }),
    ])
  })

  it('never allows process creation, namespaces, mounts, tracing, kernel keys or modules', () => {
    const never = [
      'fork',
      'vfork',
      'execveat',
      'ptrace',
      'process_vm_readv',
      'process_vm_writev',
      'unshare',
      'setns',
      'mount',
      'umount2',
      'pivot_root',
      'chroot',
      'bpf',
      'perf_event_open',
      'keyctl',
      'add_key',
      'request_key',
      'init_module',
      'finit_module',
      'delete_module',
      'kexec_load',
      'reboot',
      'swapon',
      'swapoff',
      'setuid',
      'setgid',
      'setresuid',
      'setresgid',
      'setgroups',
      'personality',
      'userfaultfd',
      'open_by_handle_at',
      'name_to_handle_at',
      'io_uring_setup',
      'memfd_create',
      'acct',
      'quotactl',
      'syslog',
      'settimeofday',
      'clock_settime',
      'adjtimex',
      'ioperm',
      'iopl',
      'mknod',
      'mknodat',
    ]
    expect(never.filter((n) => allowed.has(n))).toEqual([])
  })

  it('lists each syscall once', () => {
    const names = profile.syscalls.flatMap((r) => r.names)
    expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([])
  })

  it('gives every derived x86_64-only syscall its aarch64 counterpart', () => {
    const missing = [...allowed].flatMap((n) =>
      (derive.AARCH64_EQUIVALENTS[n] ?? []).filter((eq) => !allowed.has(eq)).map((eq) => `${n} → ${eq}`),
    )
    expect(missing).toEqual([])
  })

  it('is the output of scripts/derive-seccomp.js --write, not hand-edited', () => {
    const derived = new Set([...profile.syscalls[0]!.names, 'execve'])
    const rebuilt = derive.buildProfile(derived, { runs: 0, node: '', arch: '' })
    const strip = (p: Profile) => ({
      ...p,
      syscalls: p.syscalls.map((r, i) => (i === 0 ? { ...r, comment: '' } : r)),
    })
    expect(strip(profile)).toEqual(strip(rebuilt))
  })
})

const strace = hasCommand('strace', ['-V'])
const itTraced = strace ? it : it.skip
if (!strace)
  console.warn(
    'seccomp.test.ts: the strace check is skipped: strace is not installed (apt-get install -y strace)',
  )

describe('the syscalls the running server makes (strace)', () => {
  beforeAll(() => ensureBuiltAll(), 240_000)

  itTraced(
    'are all allowed by the profile',
    async () => {
      const { code, report, stderr } = await deriveScript([])
      expect(failed(report.steps)).toEqual([])
      expect(report.steps.map((s) => s.name)).toEqual(
        expect.arrayContaining(['GET /healthz over TLS is 200', 'SIGTERM drains and exits 0']),
      )
      // As root the workload runs in its own network namespace and the resolver's syscalls are traced.
      if (isRoot())
        expect(report.steps.map((s) => s.name)).toContain('the upstream host name was resolved through DNS')
      expect(report.dns).toBe(isRoot())
      const derived = report.derived ?? []
      expect(derived.length).toBeGreaterThan(40)
      expect(derived).toEqual(
        expect.arrayContaining(['execve', 'accept4', 'epoll_pwait', 'openat', 'exit_group']),
      )
      // Checked here as well as by the script: nothing the server made is denied.
      expect(derived.filter((n) => !allowed.has(n) && !enosys.has(n))).toEqual([])
      expect(report.denied).toEqual([])
      expect([code, stderr]).toEqual([0, ''])
    },
    110_000,
  )
})

const seccomp = hasPythonSeccomp()
const itEnforced = seccomp ? it : it.skip
if (!seccomp)
  console.warn(
    'seccomp.test.ts: the enforced run is skipped: python3-seccomp is not installed (apt-get install -y python3-seccomp)',
  )

describe('the server under the profile (scripts/seccomp-exec.py)', () => {
  beforeAll(() => ensureBuiltAll(), 240_000)

  itEnforced(
    'runs the whole workload: config check, keys create, TLS, proxying with DNS, metrics, SIGTERM exit 0',
    async () => {
      const { code, report } = await deriveScript(['--enforce'])
      expect(failed(report.steps)).toEqual([])
      expect(report.steps.length).toBeGreaterThanOrEqual(13)
      expect(code).toBe(0)
    },
    110_000,
  )

  itEnforced('refuses fork to node with EPERM (threads, via the clone fallback, still work)', async () => {
    const probe = [
      "const cp = require('child_process')",
      "try { cp.execFileSync('/bin/true'); console.log('fork allowed') } catch (e) { console.log('fork', e.code) }",
    ].join('\n')
    const r = await run(
      '/usr/bin/python3',
      [join(scriptsDir, 'seccomp-exec.py'), profilePath, '--', process.execPath, '-e', probe],
      { timeoutMs: 20_000 },
    )
    expect(r.stdout.trim()).toBe('fork EPERM')
    expect(r.code).toBe(0)
  })

  itEnforced(
    'is really enforced: the same workload fails under a profile without clone',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'gh-seccomp-neg-'))
      try {
        const broken = { ...profile, syscalls: profile.syscalls.filter((r) => !r.names.includes('clone')) }
        writeFileSync(join(dir, 'no-clone.json'), JSON.stringify(broken))
        const { code, report } = await deriveScript(['--enforce', join(dir, 'no-clone.json')])
        expect(code).toBe(1)
        expect(report.steps.find((s) => s.name === 'gatehouse config check exits 0')?.ok).toBe(false)
        expect(report.steps.every((s) => s.ok)).toBe(false)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
    110_000,
  )

  itEnforced('usage errors exit 2', async () => {
    const r = await run('/usr/bin/python3', [join(scriptsDir, 'seccomp-exec.py'), profilePath])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('usage: seccomp-exec.py PROFILE.json -- COMMAND')
  })
})
