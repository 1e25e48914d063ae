import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { GatehouseError } from '@gatehouse/core'
import { runNpmAudit, type AuditResult } from './audit'
import { PKG, SecurityCheckErrorCodes } from './errors'
import { plural } from './format'
import { resolveRunAllConfig, type RunAllOptions } from './options'
import { checkPermissions, type PermissionsResult } from './permissions'
import { scanSecrets, type ScanSecretsResult } from './secrets/scan'
import { checkTls, type TlsResult } from './tls'

export type StepStatus = 'ok' | 'findings' | 'warning' | 'skipped'

export interface AllResult {
  /** True when no step has a finding (warnings and skipped steps do not fail). */
  readonly ok: boolean
  readonly permissions: { status: StepStatus; message: string; result?: PermissionsResult }
  readonly secrets: { status: StepStatus; message: string; result: ScanSecretsResult }
  readonly tls: { status: StepStatus; message: string; result?: TlsResult }
  readonly audit: AuditResult
}

/** The seed's `tls/tls.crt` and `tls/tls.key`, checked when no certificate is named. */
export const DEFAULT_TLS_CERT = join('tls', 'tls.crt')
export const DEFAULT_TLS_KEY = join('tls', 'tls.key')

/**
 * The pre-deployment checklist in one call: the auth directory's permissions, secrets in the tree,
 * the TLS certificate when there is one, and `npm audit --omit=dev --audit-level=high`.
 */
export async function runAll(options: RunAllOptions = {}): Promise<AllResult> {
  const config = resolveRunAllConfig(options)
  const cwd = resolve(config.cwd)

  // TLS inputs first: a key without any certificate is a usage error, found before any work.
  let cert = config.cert
  let key = config.key
  if (cert === undefined && existsSync(join(cwd, DEFAULT_TLS_CERT))) {
    cert = DEFAULT_TLS_CERT
    if (key === undefined && existsSync(join(cwd, DEFAULT_TLS_KEY))) key = DEFAULT_TLS_KEY
  }
  if (cert === undefined && key !== undefined) {
    throw new GatehouseError(
      SecurityCheckErrorCodes.GH_SC_USAGE,
      `${PKG}: a TLS key was given without a certificate (--cert)`,
      400,
    )
  }
  const authAbs = resolve(cwd, config.authDir)
  if (config.authDirGiven && !existsSync(authAbs)) {
    throw new GatehouseError(
      SecurityCheckErrorCodes.GH_SC_PATH_NOT_FOUND,
      `${PKG}: auth directory ${JSON.stringify(config.authDir)} does not exist`,
      400,
    )
  }

  // npm audit talks to the registry: start it now, check the rest while it runs.
  const abort = new AbortController()
  const auditPromise: Promise<AuditResult> = config.audit
    ? runNpmAudit({ cwd, env: config.env, timeoutMs: config.auditTimeoutMs, signal: abort.signal })
    : Promise.resolve({ status: 'skipped', message: 'skipped (--no-audit)' })

  try {
    let permissions: AllResult['permissions']
    if (!existsSync(authAbs)) {
      permissions = { status: 'skipped', message: `${config.authDir} does not exist` }
    } else {
      const result = await checkPermissions({ paths: [config.authDir], cwd, fix: config.fix })
      const open = result.findings.filter((f) => !f.fixed).length
      const fixed = result.findings.length - open
      permissions = {
        status: result.ok ? 'ok' : 'findings',
        message:
          `${config.authDir}: ${plural(result.checked.files, 'file')}, ${plural(result.checked.directories, 'directory', 'directories')}` +
          (open > 0 ? `, ${plural(open, 'finding')}` : '') +
          (fixed > 0 ? `, ${fixed} fixed` : ''),
        result,
      }
    }

    const scan = await scanSecrets({
      paths: config.paths,
      cwd,
      ...(Number.isFinite(config.maxFileSize) ? { maxFileSize: config.maxFileSize } : {}),
      ...(config.baseline === undefined ? {} : { baseline: config.baseline }),
    })
    const secrets: AllResult['secrets'] = {
      status: scan.ok ? 'ok' : 'findings',
      message: `${plural(scan.findings.length, 'finding')} in ${plural(scan.files, 'file')}${scan.skipped.tooLarge > 0 ? `, ${scan.skipped.tooLarge} over --max-size, not scanned` : ''}`,
      result: scan,
    }

    let tls: AllResult['tls']
    if (cert === undefined) {
      tls = { status: 'skipped', message: `no --cert and no ${DEFAULT_TLS_CERT}` }
    } else {
      const result = await checkTls({
        cert,
        cwd,
        minDays: config.minDays,
        ...(key === undefined ? {} : { key }),
      })
      const c = result.certificate
      tls = {
        status: result.ok ? 'ok' : 'findings',
        message: result.ok
          ? `${cert}: ${c ? `${c.daysLeft} days left` : 'ok'}${key === undefined ? ', no key checked' : ', key matches'}`
          : `${cert}: ${plural(result.findings.length, 'finding')}`,
        result,
      }
    }

    const audit = await auditPromise
    const ok = [permissions.status, secrets.status, tls.status, audit.status].every((s) => s !== 'findings')
    return { ok, permissions, secrets, tls, audit }
  } finally {
    // On an error above, stop npm instead of waiting for it (a no-op once it has finished).
    abort.abort()
  }
}
