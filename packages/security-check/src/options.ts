import { GatehouseConfigError, parseDuration, parseSize } from '@gatehouse/core'
import { PKG, SecurityCheckErrorCodes } from './errors'
import { checkPermissionsSchema, checkTlsSchema, installHookSchema, resolver, runAllSchema, scanSecretsSchema } from './schemas'

export { checkPermissionsSchema, checkTlsSchema, installHookSchema, runAllSchema, scanSecretsSchema } from './schemas'

/** Options of {@link checkPermissions}. */
export interface CheckPermissionsOptions {
  /** Directories (or single files) to check. Each directory is walked; symbolic links are reported, never followed. */
  paths: readonly string[]
  /** Repair what can be repaired: chmod files to `fileMode` and directories to `dirMode`. @default false */
  fix?: boolean
  /** The mode every regular file must have. @default 0o600 */
  fileMode?: number
  /** The mode every directory must have. @default 0o700 */
  dirMode?: number
  /** The uid that must own every entry. @default the uid of the running process (POSIX only) */
  owner?: number
  /** Relative paths are resolved against this directory, and reported relative to it. @default process.cwd() */
  cwd?: string
}

/** Options of {@link scanSecrets}. */
export interface ScanSecretsOptions {
  /** Files and directories to scan; with `staged`, a git pathspec that limits the staged files. @default ['.'] */
  paths?: readonly string[]
  /** Scan only the lines that `git diff --cached` adds (a pre-commit hook). @default false */
  staged?: boolean
  /** Relative paths are resolved against this directory, and reported relative to it. @default process.cwd() */
  cwd?: string
  /**
   * A hard limit: files larger than this are not read, are counted as skipped, and make the scan
   * fail (`ok: false`). Bytes or a size such as `"5mb"`. Without it every file is read, a large one
   * in chunks of 96 KiB. @default none
   */
  maxFileSize?: number | string
  /** A baseline file written by `writeBaseline`; findings listed in it are not reported. */
  baseline?: string
  /**
   * A file of sha256 digests of honeytokens (decoy keys), one per line: a finding whose credential
   * has one of these digests is reported as a honeytoken. Never the tokens themselves.
   */
  honeytokens?: string
  /** Skip what `.gitignore` files (and `.git/info/exclude`) ignore. @default true */
  gitignore?: boolean
  /** More paths to skip, in .gitignore syntax, relative to `cwd`. @default [] */
  exclude?: readonly string[]
}

/** Options of {@link checkTls}. */
export interface CheckTlsOptions {
  /** The certificate file (PEM, a chain is fine, or DER). */
  cert: string
  /** The private key file (PEM or DER); when given it must match the certificate. */
  key?: string
  /** A certificate that expires within this many days is a finding. @default 30 */
  minDays?: number
  /** Relative paths are resolved against this directory. @default process.cwd() */
  cwd?: string
}

/** Options of {@link runAll}. */
export interface RunAllOptions {
  /** The working tree to check. @default process.cwd() */
  cwd?: string
  /** The credential directory whose files must be 0600 and directories 0700; skipped when absent. @default 'auths' */
  authDir?: string
  /** Fix the auth directory's modes instead of only reporting them. @default false */
  fix?: boolean
  /** Paths to scan for secrets. @default ['.'] */
  paths?: readonly string[]
  /** A secrets baseline file. */
  baseline?: string
  /** A hard limit on the size of a scanned file, as `scanSecrets`'s. @default none */
  maxFileSize?: number | string
  /** The TLS certificate; when absent, `tls/tls.crt` is checked if it exists, else TLS is skipped. */
  cert?: string
  /** The TLS private key; when absent and `cert` is absent, `tls/tls.key` is used if it exists. */
  key?: string
  /** Days of validity the certificate must have left. @default 30 */
  minDays?: number
  /** Run `npm audit --omit=dev --audit-level=high`. @default true */
  audit?: boolean
  /** How long `npm audit` may take: milliseconds or a duration such as `"2m"`. @default '120s' */
  auditTimeout?: number | string
  /** Environment for `npm audit`. @default process.env */
  env?: NodeJS.ProcessEnv
}

/** Options of {@link installHook}. */
export interface InstallHookOptions {
  /** A directory inside the git work tree. @default process.cwd() */
  cwd?: string
  /** Replace a pre-commit hook that Gatehouse did not write (it is kept as `pre-commit.bak`). @default false */
  force?: boolean
  /** The JavaScript file the hook runs when `node_modules/.bin/gatehouse-check` is absent. @default this package's dist/cli.js */
  cliPath?: string
}

export interface PermissionsConfig {
  readonly paths: readonly string[]
  readonly fix: boolean
  readonly fileMode: number
  readonly dirMode: number
  readonly owner: number | undefined
  readonly cwd: string
}

export interface ScanSecretsConfig {
  readonly paths: readonly string[]
  readonly staged: boolean
  readonly cwd: string
  readonly maxFileSize: number
  readonly baseline: string | undefined
  readonly honeytokens: string | undefined
  readonly gitignore: boolean
  readonly exclude: readonly string[]
}

export interface TlsConfig {
  readonly cert: string
  readonly key: string | undefined
  readonly minDays: number
  readonly cwd: string
}

export interface RunAllConfig {
  readonly cwd: string
  readonly authDir: string
  readonly authDirGiven: boolean
  readonly fix: boolean
  readonly paths: readonly string[]
  readonly baseline: string | undefined
  readonly maxFileSize: number
  readonly cert: string | undefined
  readonly key: string | undefined
  readonly minDays: number
  readonly audit: boolean
  readonly auditTimeoutMs: number
  readonly env: NodeJS.ProcessEnv
}

export interface InstallHookConfig {
  readonly cwd: string
  readonly force: boolean
  readonly cliPath: string | undefined
}

/** No size limit by default: a large file is read in chunks, in bounded memory. */
export const DEFAULT_MAX_FILE_SIZE = Infinity
export const DEFAULT_MIN_DAYS = 30
export const DEFAULT_AUDIT_TIMEOUT_MS = 120_000

const resolvePermissions = resolver<CheckPermissionsOptions>('checkPermissions', checkPermissionsSchema)
const resolveScan = resolver<ScanSecretsOptions>('scanSecrets', scanSecretsSchema)
const resolveTls = resolver<CheckTlsOptions>('checkTls', checkTlsSchema)
const resolveAll = resolver<RunAllOptions>('runAll', runAllSchema, ['env'])
const resolveHook = resolver<InstallHookOptions>('installHook', installHookSchema)

const currentUid = (): number | undefined =>
  typeof process.getuid === 'function' ? process.getuid() : undefined

export function resolvePermissionsConfig(options: unknown): PermissionsConfig {
  const o = resolvePermissions(options)
  return Object.freeze({
    paths: Object.freeze([...o.paths]),
    fix: o.fix ?? false,
    fileMode: o.fileMode ?? 0o600,
    dirMode: o.dirMode ?? 0o700,
    owner: o.owner ?? currentUid(),
    cwd: o.cwd ?? process.cwd(),
  })
}

export function resolveScanSecretsConfig(options: unknown): ScanSecretsConfig {
  const o = resolveScan(options)
  return Object.freeze({
    paths: Object.freeze([...(o.paths ?? [])]),
    staged: o.staged ?? false,
    cwd: o.cwd ?? process.cwd(),
    maxFileSize:
      o.maxFileSize === undefined ? DEFAULT_MAX_FILE_SIZE : parseSize(o.maxFileSize, 'maxFileSize'),
    baseline: o.baseline,
    honeytokens: o.honeytokens,
    gitignore: o.gitignore ?? true,
    exclude: Object.freeze([...(o.exclude ?? [])]),
  })
}

export function resolveTlsConfig(options: unknown): TlsConfig {
  const o = resolveTls(options)
  return Object.freeze({
    cert: o.cert,
    key: o.key,
    minDays: o.minDays ?? DEFAULT_MIN_DAYS,
    cwd: o.cwd ?? process.cwd(),
  })
}

export function resolveRunAllConfig(options: unknown): RunAllConfig {
  const o = resolveAll(options)
  if (o.env !== undefined && (o.env === null || typeof o.env !== 'object' || Array.isArray(o.env))) {
    throw new GatehouseConfigError(
      SecurityCheckErrorCodes.GH_SC_INVALID_OPTIONS,
      `${PKG}: runAll() env: must be an object of environment variables`,
    )
  }
  return Object.freeze({
    cwd: o.cwd ?? process.cwd(),
    authDir: o.authDir ?? 'auths',
    authDirGiven: o.authDir !== undefined,
    fix: o.fix ?? false,
    paths: Object.freeze([...(o.paths ?? ['.'])]),
    baseline: o.baseline,
    maxFileSize:
      o.maxFileSize === undefined ? DEFAULT_MAX_FILE_SIZE : parseSize(o.maxFileSize, 'maxFileSize'),
    cert: o.cert,
    key: o.key,
    minDays: o.minDays ?? DEFAULT_MIN_DAYS,
    audit: o.audit ?? true,
    auditTimeoutMs:
      o.auditTimeout === undefined ? DEFAULT_AUDIT_TIMEOUT_MS : parseDuration(o.auditTimeout, 'auditTimeout'),
    env: Object.freeze({ ...(o.env ?? process.env) }),
  })
}

export function resolveInstallHookConfig(options: unknown): InstallHookConfig {
  const o = resolveHook(options)
  return Object.freeze({ cwd: o.cwd ?? process.cwd(), force: o.force ?? false, cliPath: o.cliPath })
}
