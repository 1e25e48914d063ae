import { resolve } from 'node:path'
import { isGatehouseError, maskSecrets, parseDuration } from '@gatehouse/core'
import { maxSize, minDays, noPositionals, parse, str, USAGE, UsageError } from './args'
import { runAll, type AllResult } from './all'
import { PKG, SecurityCheckErrorCodes } from './errors'
import {
  formatBytes,
  formatSecretsJson,
  formatSecretsSarif,
  formatSecretsText,
  packageVersion,
  plural,
  secretsSummary,
  type SecretsFormat,
} from './format'
import { installHook } from './hook'
import { checkPermissions } from './permissions'
import { scanSecrets, writeSecretsBaseline } from './secrets/scan'
import { checkTls, type TlsResult } from './tls'

/** Where the CLI writes and what it runs in; tests pass their own. */
export interface CliIo {
  stdout(text: string): void
  stderr(text: string): void
  /** @default process.cwd() */
  cwd: string
  /** @default process.env */
  env: NodeJS.ProcessEnv
}

export const EXIT_OK = 0
export const EXIT_FINDINGS = 1
export const EXIT_USAGE = 2

export { USAGE } from './args'

async function runPermissions(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse('permissions', args)
  if (positionals.length === 0)
    throw new UsageError('permissions: name at least one directory (e.g. gatehouse-check permissions auths)')
  const owner = str(values.owner)
  if (owner !== undefined && !/^\d+$/.test(owner))
    throw new UsageError(`--owner must be a numeric uid (got ${JSON.stringify(owner)})`)
  const result = await checkPermissions({
    paths: positionals,
    cwd: io.cwd,
    fix: values.fix === true,
    ...(owner === undefined ? {} : { owner: Number(owner) }),
  })
  for (const f of result.findings) io.stdout(`${f.message}\n`)
  const open = result.findings.filter((f) => !f.fixed).length
  const fixed = result.findings.length - open
  const checked = `${plural(result.checked.files, 'file')}, ${plural(result.checked.directories, 'directory', 'directories')} checked`
  io.stdout(
    `gatehouse-check permissions: ${open === 0 ? 'ok' : plural(open, 'finding')}${fixed > 0 ? `, ${fixed} fixed` : ''} (${checked})\n`,
  )
  return result.ok ? EXIT_OK : EXIT_FINDINGS
}

async function runSecrets(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse('secrets', args)
  const format = (str(values.format) ?? 'text') as SecretsFormat
  if (!['text', 'json', 'sarif'].includes(format)) {
    throw new UsageError(`--format must be text, json or sarif (got ${JSON.stringify(format)})`)
  }
  const writeTo = str(values['write-baseline'])
  const baseline = str(values.baseline)
  const honeytokens = str(values.honeytokens)
  const size = maxSize(values['max-size'])
  const result = await scanSecrets({
    paths: positionals,
    cwd: io.cwd,
    staged: values.staged === true,
    gitignore: values['no-gitignore'] !== true,
    exclude: (values.exclude as string[] | undefined) ?? [],
    // Writing a baseline records every current finding, so the old baseline does not filter.
    ...(baseline === undefined || writeTo !== undefined ? {} : { baseline }),
    ...(size === undefined ? {} : { maxFileSize: size }),
    ...(honeytokens === undefined ? {} : { honeytokens }),
  })
  if (writeTo !== undefined) {
    const written = writeSecretsBaseline(resolve(io.cwd, writeTo), result.findings)
    io.stdout(
      `gatehouse-check secrets: wrote ${plural(written.findings.length, 'finding')} to ${writeTo}; later scans with --baseline ${writeTo} report only new ones\n`,
    )
    return EXIT_OK
  }
  if (format === 'text') {
    io.stdout(formatSecretsText(result))
    io.stdout(secretsSummary(result))
  } else {
    io.stdout(format === 'json' ? formatSecretsJson(result) : formatSecretsSarif(result))
    io.stderr(secretsSummary(result))
  }
  return result.ok ? EXIT_OK : EXIT_FINDINGS
}

function printTls(result: TlsResult, cert: string, io: CliIo): void {
  const c = result.certificate
  if (c) {
    const subject = c.subject.split('\n').join(', ')
    const key = `${c.keyType.toUpperCase()}${c.keyBits === undefined ? '' : ` ${c.keyBits}`}`
    io.stdout(`${cert}: ${subject}, ${key}, valid until ${c.validTo} (${c.daysLeft} days)\n`)
  }
  for (const f of result.findings) io.stdout(`${f.message}\n`)
}

async function runTls(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse('tls', args)
  noPositionals('tls', positionals)
  const cert = str(values.cert)
  if (cert === undefined) throw new UsageError('tls: --cert FILE is required')
  const key = str(values.key)
  const days = minDays(values['min-days'])
  const result = await checkTls({
    cert,
    cwd: io.cwd,
    ...(key === undefined ? {} : { key }),
    ...(days === undefined ? {} : { minDays: days }),
  })
  printTls(result, cert, io)
  io.stdout(`gatehouse-check tls: ${result.ok ? 'ok' : plural(result.findings.length, 'finding')}\n`)
  return result.ok ? EXIT_OK : EXIT_FINDINGS
}

function printAll(result: AllResult, io: CliIo): void {
  const p = result.permissions.result
  if (p) for (const f of p.findings) io.stdout(`permissions: ${f.message}\n`)
  io.stdout(formatSecretsText(result.secrets.result))
  const t = result.tls.result
  if (t) for (const f of t.findings) io.stdout(`tls: ${f.message}\n`)
  if (result.audit.status === 'findings') io.stdout(`npm audit: ${result.audit.message}\n`)
  if (result.audit.status === 'warning') io.stderr(`gatehouse-check all: warning: ${result.audit.message}\n`)
  const s = result.secrets.result
  const label = (st: string): string => (st === 'findings' ? 'FINDINGS' : st === 'warning' ? 'WARNING' : st)
  const rows: Array<[string, string, string]> = [
    ['permissions', result.permissions.status, result.permissions.message],
    ['secrets', result.secrets.status, `${result.secrets.message} (${formatBytes(s.bytes)})`],
    ['tls', result.tls.status, result.tls.message],
    ['npm audit', result.audit.status, result.audit.message],
  ]
  io.stdout('\ngatehouse-check all:\n')
  for (const [name, status, message] of rows)
    io.stdout(`  ${name.padEnd(12)} ${label(status).padEnd(9)} ${message}\n`)
  const failed = rows.filter(([, st]) => st === 'findings').length
  const warned = rows.filter(([, st]) => st === 'warning').length
  io.stdout(
    `result: ${failed === 0 ? 'ok' : `${failed} ${failed === 1 ? 'check' : 'checks'} with findings`}` +
      `${warned > 0 ? `, ${warned} ${warned === 1 ? 'warning' : 'warnings'}` : ''}\n`,
  )
}

async function runAllCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse('all', args)
  const days = minDays(values['min-days'])
  const size = maxSize(values['max-size'])
  const timeout = str(values['audit-timeout'])
  let auditTimeout: number | undefined
  if (timeout !== undefined) {
    try {
      auditTimeout = /^\d+$/.test(timeout)
        ? Number(timeout) * 1000
        : parseDuration(timeout, '--audit-timeout')
    } catch {
      throw new UsageError(
        `--audit-timeout must be a duration such as 90s or 2m (got ${JSON.stringify(timeout)})`,
      )
    }
    if (auditTimeout <= 0) throw new UsageError('--audit-timeout must be positive')
  }
  const pick = (name: string): string | undefined => str(values[name])
  const result = await runAll({
    cwd: io.cwd,
    env: io.env,
    fix: values.fix === true,
    audit: values['no-audit'] !== true,
    ...(positionals.length > 0 ? { paths: positionals } : {}),
    ...(pick('auth-dir') === undefined ? {} : { authDir: pick('auth-dir')! }),
    ...(pick('cert') === undefined ? {} : { cert: pick('cert')! }),
    ...(pick('key') === undefined ? {} : { key: pick('key')! }),
    ...(pick('baseline') === undefined ? {} : { baseline: pick('baseline')! }),
    ...(days === undefined ? {} : { minDays: days }),
    ...(size === undefined ? {} : { maxFileSize: size }),
    ...(auditTimeout === undefined ? {} : { auditTimeout }),
  })
  printAll(result, io)
  return result.ok ? EXIT_OK : EXIT_FINDINGS
}

async function runInstallHook(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse('install-hook', args)
  noPositionals('install-hook', positionals)
  const result = await installHook({ cwd: io.cwd, force: values.force === true })
  const backup = result.backup === undefined ? '' : ` (the previous hook is kept as ${result.backup})`
  io.stdout(
    `gatehouse-check install-hook: ${result.action} ${result.path}${backup}; commits now run \`gatehouse-check secrets --staged\`\n`,
  )
  return EXIT_OK
}

const RUNNERS: Record<string, (args: readonly string[], io: CliIo) => Promise<number>> = {
  permissions: runPermissions,
  secrets: runSecrets,
  tls: runTls,
  all: runAllCommand,
  'install-hook': runInstallHook,
}

/**
 * The `gatehouse-check` command line. Resolves the exit code: 0 clean, 1 findings (or a foreign
 * pre-commit hook in the way), 2 usage error. Never calls process.exit.
 */
export async function main(argv: readonly string[], ioOverrides: Partial<CliIo> = {}): Promise<number> {
  const io: CliIo = {
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(t),
    cwd: process.cwd(),
    env: process.env,
    ...ioOverrides,
  }
  const [command, ...rest] = argv
  if (command === undefined) {
    io.stderr(USAGE)
    return EXIT_USAGE
  }
  if (command === '--help' || command === '-h' || command === 'help') {
    io.stdout(USAGE)
    return EXIT_OK
  }
  if (command === '--version' || command === '-v') {
    io.stdout(`${packageVersion()}\n`)
    return EXIT_OK
  }
  const runner = RUNNERS[command]
  if (runner === undefined) {
    io.stderr(`gatehouse-check: unknown command ${JSON.stringify(command)}\n\n${USAGE}`)
    return EXIT_USAGE
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout(USAGE)
    return EXIT_OK
  }
  try {
    return await runner(rest, io)
  } catch (err) {
    const message = maskSecrets(err instanceof Error ? err.message : String(err)).replace(`${PKG}: `, '')
    if (isGatehouseError(err) && err.code === SecurityCheckErrorCodes.GH_SC_HOOK_EXISTS) {
      io.stderr(`gatehouse-check: ${message}\n`)
      return EXIT_FINDINGS
    }
    const hint =
      isGatehouseError(err) && err.code === SecurityCheckErrorCodes.GH_SC_USAGE
        ? '\nRun gatehouse-check --help for usage.'
        : ''
    io.stderr(`gatehouse-check: ${message}${hint}\n`)
    return EXIT_USAGE
  }
}
