import { ServerErrorCodes } from '../errors'
import { layerErrors } from './adapters'
import { existsSync, readFileSync } from 'node:fs'
import { resolve as resolvePath } from 'node:path'
import Ajv, { type ValidateFunction } from 'ajv'
import dotenv from 'dotenv'
import YAML from 'yaml'
import { describeAjvErrors, maskSecrets, parseDuration, parseSize, type ProviderName, PROVIDER_NAMES } from '@gatehouse/core'
import { parseCondition } from '@gatehouse/alerts'
import { defaultConfig } from './defaults'
import { mapCipherSuites } from '../tls'
import { readTrustProxy } from './trust-proxy'
import { configSchema, SECRET_CONFIG_KEYS } from './schema'
import type { GatehouseConfig } from './types'

/** A config that cannot be used: `errors` names every bad key by its path. */
/**
 * `scheme://user:password@host` → `scheme://****@host`, wherever it appears in a message. Stricter
 * than core's masker, which keeps the user name (useful in logs): in a config a bare userinfo is
 * often the token itself (`https://TOKEN@host`). Core's masker then takes whatever else it knows.
 */
export const maskUserinfo = (text: string): string => maskSecrets(text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"]+@/gi, '$1****@'))

export class ConfigError extends Error {
  override name = 'ConfigError'
  readonly code = ServerErrorCodes.GH_SERVER_CONFIG_INVALID
  readonly errors: string[]
  constructor(
    errors: string[],
    readonly source: string,
  ) {
    // A value quoted back may be a URL with a password in it: never echoed (the key names it).
    const safe = errors.map(maskUserinfo)
    super(`invalid configuration (${source}):\n${safe.map((e) => `  - ${e}`).join('\n')}`)
    this.errors = safe
  }
}

export interface LoadedConfig {
  config: GatehouseConfig
  /** 'embedded default' or the file path. */
  source: string
  /** Things worth saying at start that do not stop it. */
  warnings: string[]
  /** The environment after `.env` was read (existing variables win, as with dotenv). */
  env: Record<string, string | undefined>
}

export interface LoadOptions {
  /** Path of the YAML config; the embedded default when absent. */
  file?: string
  /** @default process.env */
  env?: NodeJS.ProcessEnv
  /** Where `.env` and relative paths are resolved. @default process.cwd() */
  cwd?: string
}

let compiled: ValidateFunction | undefined
/** The config schema's validator, compiled on first use (commands that read no config skip it). */
const validateConfig = (): ValidateFunction =>
  (compiled ??= new Ajv({ allErrors: true, strict: false, allowUnionTypes: true, coerceTypes: true, verbose: true }).compile(configSchema))

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g

/** Replace `${VAR}` and `${VAR:-default}` in every string; note references to unset variables. */
function interpolate(value: unknown, env: Record<string, string | undefined>, path: string, unset: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (_m, name: string, fallback: string | undefined) => {
      const v = env[name]
      if (v !== undefined && v !== '') return v
      if (fallback !== undefined) return fallback
      unset.push(`${path}: \${${name}} is not set`)
      return ''
    })
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, `${path}.${i}`, unset))
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, interpolate(v, env, path ? `${path}.${k}` : k, unset)]),
    )
  }
  return value
}

/** Remove keys whose value interpolated to an empty string, so the default applies. */
function dropEmpty(value: unknown): unknown {
  if (Array.isArray(value)) return value.filter((v) => v !== '').map(dropEmpty)
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== '' && v !== null)
        .map(([k, v]) => [k, dropEmpty(v)]),
    )
  }
  return value
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/** Deep merge: objects merge, arrays and scalars replace. */
function merge<T>(base: T, over: unknown): T {
  if (!isPlainObject(base) || !isPlainObject(over)) return (over === undefined ? base : over) as T
  const out: Record<string, unknown> = { ...base }
  for (const [k, v] of Object.entries(over)) out[k] = k in out ? merge(out[k], v) : v
  return out as T
}

export const PROVIDER_ENV: Record<ProviderName, string> = {
  claude: 'ANTHROPIC_API_KEY',
  openai: 'OPENAI_API_KEY',
  gemini: 'GEMINI_API_KEY',
}

/** Cross-field rules that a schema cannot say. */
function semanticErrors(c: GatehouseConfig, cwd: string): string[] {
  const errors: string[] = []
  if (c.server.trust_proxy === true) {
    errors.push(
      'server.trust_proxy: true trusts every hop, so any client can forge its address with X-Forwarded-For; use a hop count (1) or a list of proxy CIDRs',
    )
  }
  if (c.server.tls.enabled) {
    for (const key of ['cert_file', 'key_file'] as const) {
      const file = c.server.tls[key]
      if (!file) errors.push(`server.tls.${key}: is required when server.tls.enabled is true`)
      else if (!existsSync(resolvePath(cwd, file))) errors.push(`server.tls.${key}: no such file ${JSON.stringify(file)} (relative paths are read from the directory the gateway starts in)`)
    }
  }
  // Files the audit shipping reads at start.
  const sinks = c.logging.audit.sinks ?? []
  sinks.forEach((sink, i) => {
    for (const key of ['ca_file', 'cert_file', 'key_file'] as const) {
      const file = sink[key]
      if (file && !existsSync(resolvePath(cwd, file))) errors.push(`logging.audit.sinks.${i}.${key}: no such file ${JSON.stringify(file)}`)
    }
    if (sink.type === 'syslog' && !sink.host) errors.push(`logging.audit.sinks.${i}.host: is required for a syslog sink`)
    if (sink.type === 'https' && !sink.url) errors.push(`logging.audit.sinks.${i}.url: is required for an https sink`)
  })
  const cp = c.logging.audit.checkpoints
  if (cp?.signing_key_file && (cp.enabled ?? sinks.length > 0) && !existsSync(resolvePath(cwd, cp.signing_key_file))) {
    errors.push(`logging.audit.checkpoints.signing_key_file: no such file ${JSON.stringify(cp.signing_key_file)}`)
  }
  const { unknown } = mapCipherSuites(c.server.tls.cipher_suites ?? [])
  for (const name of unknown) {
    const i = c.server.tls.cipher_suites!.indexOf(name)
    errors.push(`server.tls.cipher_suites.${i}: unknown cipher suite ${JSON.stringify(name)}; use IANA names such as "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"`)
  }
  if (c.store.type === 'redis' && !c.store.url) errors.push('store.url: is required when store.type is "redis"')
  // Cluster mode keeps the vault's credential records in Redis, encrypted under this key. Refused rather
  // than warned: off, they would sit in Redis in plaintext, and keeping them in files instead would let
  // the replicas serve different credentials with nothing to show it.
  if (c.store.type === 'redis' && !c.auth.encryption.enabled) errors.push('auth.encryption.enabled: must be true when store.type is "redis" (cluster mode keeps the credential records in Redis, encrypted under auth.encryption.key)')
  const lease = c.auth.oauth?.refresh_lease
  try {
    if (lease !== undefined && parseDuration(lease, 'auth.oauth.refresh_lease') < 1000) errors.push('auth.oauth.refresh_lease: must be at least 1s')
  } catch (e) {
    errors.push((e as Error).message)
  }
  if (c.storage.enabled && !c.storage.url) errors.push('storage.url: is required when storage.enabled is true')
  for (const [path, value] of [
    ['server.retry_after', c.server.retry_after],
    ['store.max_staleness', c.store.max_staleness],
    ['logging.audit.aggregate_interval', c.logging.audit.aggregate_interval],
  ] as const) {
    try {
      parseDuration(value, path)
    } catch (e) {
      errors.push((e as Error).message)
    }
  }
  for (const [name, value] of Object.entries(c.server.timeouts)) {
    try {
      parseDuration(value, `server.timeouts.${name}`)
    } catch (e) {
      errors.push((e as Error).message)
    }
  }
  try {
    parseSize(c.server.body_limit, 'server.body_limit')
  } catch (e) {
    errors.push((e as Error).message)
  }
  for (const [i, rule] of c.alerts.entries()) {
    // The alert engine's own parser, so the config check and the engine accept the same rules.
    const parsed = parseCondition(rule.condition)
    if (typeof parsed === 'string') errors.push(`alerts.${i}.condition: ${parsed}`)
  }
  if (c.server.port !== 0 && c.metrics.enabled && c.metrics.port === c.server.port && c.metrics.host === c.server.host) {
    errors.push(`metrics.port: must differ from server.port (both ${c.server.port})`)
  }
  return errors
}

/**
 * Read, interpolate, validate and complete the configuration. Throws ConfigError naming every bad
 * key by its path; never starts anything.
 */
export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const cwd = options.cwd ?? process.cwd()
  const baseEnv = options.env ?? process.env
  const envFile = resolvePath(cwd, '.env')
  const fromFile = existsSync(envFile) ? dotenv.parse(readFileSync(envFile)) : {}
  const env: Record<string, string | undefined> = { ...fromFile, ...baseEnv }
  const warnings: string[] = []
  const source = options.file ? resolvePath(cwd, options.file) : 'embedded default'

  let raw: unknown = {}
  if (options.file) {
    let text: string
    try {
      text = readFileSync(source, 'utf8')
    } catch (e) {
      throw new ConfigError([`cannot read ${source}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`], source)
    }
    const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true })
    if (doc.errors.length) {
      throw new ConfigError(
        doc.errors.map((e) => `YAML ${e.linePos?.[0] ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : ''}: ${e.message.split('\n')[0]}`),
        source,
      )
    }
    raw = doc.toJS() ?? {}
    if (!isPlainObject(raw)) throw new ConfigError(['(root): must be a mapping of sections (server:, auth:, …)'], source)
  }

  const unset: string[] = []
  const interpolated = dropEmpty(interpolate(raw, env, '', unset)) as Record<string, unknown>
  for (const u of unset) warnings.push(u)

  // The bare-list form of ip_denylist.
  const sec = (interpolated.server as Record<string, unknown> | undefined)?.security as Record<string, unknown> | undefined
  if (sec && Array.isArray(sec.ip_denylist)) sec.ip_denylist = { enabled: true, denied_ips: sec.ip_denylist }

  // server.trust_proxy is read on its own: the schema's coercion would turn the hop count 1 into true.
  const server = interpolated.server as Record<string, unknown> | undefined
  const trust = server && 'trust_proxy' in server ? readTrustProxy(server.trust_proxy) : undefined
  if (server) delete server.trust_proxy

  const validate = validateConfig()
  const schemaErrors = validate(interpolated) ? [] : describeAjvErrors(validate.errors ?? [], configSchema, { style: 'dotted', data: interpolated, secretKeys: SECRET_CONFIG_KEYS })
  if (trust && 'error' in trust) schemaErrors.push(trust.error)
  if (schemaErrors.length) throw new ConfigError(schemaErrors, source)
  const config = merge(defaultConfig(), interpolated)
  if (trust && 'value' in trust) config.server.trust_proxy = trust.value
  // A providers section lists the providers to serve; unlisted ones keep their defaults only in the embedded config.
  if (isPlainObject(interpolated.providers)) {
    const listed = interpolated.providers as Record<string, unknown>
    for (const p of PROVIDER_NAMES) if (!(p in listed)) delete config.providers[p]
  }

  // Well-known environment variables fill what the file leaves unset.
  if (!config.auth.encryption.key && env.GATEHOUSE_ENCRYPTION_KEY) config.auth.encryption.key = env.GATEHOUSE_ENCRYPTION_KEY
  if (!config.auth.key_salt && env.GATEHOUSE_KEY_SALT) config.auth.key_salt = env.GATEHOUSE_KEY_SALT
  if (!config.management.secret_key && env.GATEHOUSE_MANAGEMENT_KEY) config.management.secret_key = env.GATEHOUSE_MANAGEMENT_KEY
  if (!config.notify.webhook_url && env.SLACK_WEBHOOK_URL) config.notify.webhook_url = env.SLACK_WEBHOOK_URL
  for (const p of PROVIDER_NAMES) {
    const pc = config.providers[p]
    const v = env[PROVIDER_ENV[p]]
    if (pc && !pc.api_key && v) pc.api_key = v
  }
  if (env.GATEHOUSE_HOST) config.server.host = env.GATEHOUSE_HOST
  const port = (name: string): number | undefined => {
    const v = env[name]
    if (v === undefined || v === '') return undefined
    const n = Number(v)
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError([`${name}: must be a port number (got ${JSON.stringify(v)})`], source)
    return n
  }
  config.server.port = port('GATEHOUSE_PORT') ?? config.server.port
  // The metrics listener's 9090 is also Prometheus's own default port.
  config.metrics.port = port('GATEHOUSE_METRICS_PORT') ?? config.metrics.port
  if (env.STORAGE_ENABLED?.toLowerCase() === 'true') config.storage.enabled = true
  if (env.ENABLE_CLIENT_AUTH !== undefined) {
    const off = ['false', '0', 'no', 'off'].includes(env.ENABLE_CLIENT_AUTH.toLowerCase())
    config.auth.client_auth.enabled = !off
  }

  // What each layer's own package would refuse at start, named by YAML key (unless the YAML
  // itself is already wrong there).
  const errors = semanticErrors(config, cwd)
  // A key already named by a cross-field rule (or a key under it) is not named twice.
  const keyOf = (line: string): string => /^[^\s:]+/.exec(line)?.[0] ?? line
  for (const e of layerErrors(config)) {
    const key = keyOf(e)
    if (!errors.some((x) => keyOf(x) === key || keyOf(x).startsWith(`${key}.`))) errors.push(e)
  }
  if (errors.length) throw new ConfigError(errors, source)
  return { config, source, warnings, env }
}
