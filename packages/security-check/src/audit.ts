import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { maskSecrets } from '@gatehouse/core'

export interface VulnerabilityCounts {
  info: number
  low: number
  moderate: number
  high: number
  critical: number
  total: number
}

export interface AuditResult {
  /**
   * `ok`: no high or critical advisory; `findings`: at least one; `warning`: the audit could not be
   * done (registry unreachable, no lockfile, npm missing, timeout); `skipped`: no package.json.
   */
  readonly status: 'ok' | 'findings' | 'warning' | 'skipped'
  /** One sentence for people (registry URLs masked). */
  readonly message: string
  readonly vulnerabilities?: VulnerabilityCounts
  /** Packages with a high or critical advisory. */
  readonly packages?: ReadonlyArray<{ name: string; severity: string; fixAvailable: boolean }>
}

export interface NpmAuditOptions {
  readonly cwd: string
  readonly env: NodeJS.ProcessEnv
  readonly timeoutMs: number
  /** Aborting it stops npm; the result is then a warning. */
  readonly signal?: AbortSignal
}

export const NPM_AUDIT_ARGS = ['audit', '--omit=dev', '--audit-level=high', '--json'] as const

const NETWORK =
  /\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|ESOCKETTIMEDOUT|ERR_SOCKET_TIMEOUT|EPROTO|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN|CERT_HAS_EXPIRED)\b|audit endpoint returned an error|network/i

const firstLine = (s: string): string => maskSecrets(s.trim().split('\n')[0] ?? '').slice(0, 300)

/** Interpret `npm audit --json` output (and its stderr) once npm has exited. */
export function interpretAudit(stdout: string, stderr: string): AuditResult {
  let report: unknown
  try {
    report = JSON.parse(stdout)
  } catch {
    report = undefined
  }
  const r = (report ?? {}) as {
    message?: unknown
    error?: { code?: unknown; summary?: unknown; detail?: unknown }
    metadata?: { vulnerabilities?: Partial<VulnerabilityCounts> }
    vulnerabilities?: Record<string, { severity?: unknown; fixAvailable?: unknown }>
  }
  const counts = r.metadata?.vulnerabilities
  if (counts && typeof counts === 'object' && r.error === undefined) {
    const v: VulnerabilityCounts = {
      info: Number(counts.info ?? 0),
      low: Number(counts.low ?? 0),
      moderate: Number(counts.moderate ?? 0),
      high: Number(counts.high ?? 0),
      critical: Number(counts.critical ?? 0),
      total: Number(counts.total ?? 0),
    }
    const packages = Object.entries(r.vulnerabilities ?? {})
      .filter(([, p]) => p.severity === 'high' || p.severity === 'critical')
      .map(([name, p]) => ({ name, severity: String(p.severity), fixAvailable: Boolean(p.fixAvailable) }))
    const serious = v.high + v.critical
    return serious > 0
      ? {
          status: 'findings',
          message: `${serious} high or critical advisories in production dependencies (${packages.map((p) => `${p.name}: ${p.severity}`).join(', ')}); run npm audit for details`,
          vulnerabilities: v,
          packages,
        }
      : {
          status: 'ok',
          message: `no high or critical advisories in production dependencies (${v.total} lower)`,
          vulnerabilities: v,
          packages,
        }
  }
  const code = typeof r.error?.code === 'string' ? r.error.code : ''
  const text = [typeof r.message === 'string' ? r.message : '', String(r.error?.summary ?? ''), stderr].join(
    '\n',
  )
  if (code === 'ENOLOCK') {
    return {
      status: 'warning',
      message: 'npm audit needs a package-lock.json (npm i --package-lock-only); dependency audit not done',
    }
  }
  const http = /\b([45]\d\d) [A-Z][A-Za-z ]+ - (?:GET|POST) \S+/.exec(text)
  if (http) {
    return {
      status: 'warning',
      message: `the registry refused the audit request (${firstLine(http[0])}); dependency audit not done: run it against a registry that serves audits`,
    }
  }
  if (NETWORK.test(text) || NETWORK.test(code)) {
    return {
      status: 'warning',
      message: `npm audit could not reach the registry (${firstLine(typeof r.message === 'string' && r.message ? r.message : text) || 'network error'}); dependency audit not done: run it where the registry is reachable`,
    }
  }
  return {
    status: 'warning',
    message: `npm audit failed (${firstLine(String(r.error?.summary || r.message || '') || stderr) || 'no output'}); dependency audit not done`,
  }
}

/** Run `npm audit --omit=dev --audit-level=high` in `cwd`; never throws. */
export function runNpmAudit(options: NpmAuditOptions): Promise<AuditResult> {
  if (!existsSync(join(options.cwd, 'package.json'))) {
    return Promise.resolve({ status: 'skipped', message: 'no package.json here' })
  }
  const win = process.platform === 'win32'
  return new Promise((resolvePromise) => {
    execFile(
      win ? 'npm.cmd' : 'npm',
      [...NPM_AUDIT_ARGS],
      {
        cwd: options.cwd,
        env: { ...options.env, npm_config_fund: 'false', npm_config_update_notifier: 'false' },
        timeout: options.timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
        windowsHide: true,
        shell: win,
        encoding: 'utf8',
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { killed?: boolean; signal?: string | null }) | null
        if (e?.code === 'ENOENT') {
          resolvePromise({
            status: 'warning',
            message: 'npm is not installed or not on PATH; dependency audit not done',
          })
          return
        }
        if (e?.name === 'AbortError') {
          resolvePromise({ status: 'warning', message: 'npm audit was stopped' })
          return
        }
        if (e?.killed === true || (e !== null && e.signal === 'SIGTERM')) {
          resolvePromise({
            status: 'warning',
            message: `npm audit did not finish within ${Math.round(options.timeoutMs / 1000)} s; dependency audit not done`,
          })
          return
        }
        resolvePromise(interpretAudit(String(stdout), String(stderr)))
      },
    )
  })
}
