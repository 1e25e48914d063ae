import { resolveCredentialVaultConfig, type CredentialVaultOptions } from '@gatehouse/credential-vault'
import { resolveHstsConfig, type HstsOptions } from '@gatehouse/hsts'
import { resolveIpFilterConfig, type IpFilterOptions } from '@gatehouse/ip-filter'
import { resolveRequestGuardConfig, type SecretsOptions } from '@gatehouse/request-guard'
import { isProviderName, type ProviderName } from '@gatehouse/core'
import { jwtVerifier, type JwtAuthOptions } from '@gatehouse/client-auth'
import { resolveAuditLogConfig, type AuditLogOptions } from '@gatehouse/audit-log'
import { resolveStorageSinkConfig, type StorageSinkOptions } from '@gatehouse/storage'
import { resolveAlertEngineConfig, type AlertEngineOptions } from '@gatehouse/alerts'
import { resolveProxyConfig, type ProxyOptions } from '@gatehouse/proxy'
import { resolveDeviceFingerprintConfig, type DeviceFingerprintOptions } from '@gatehouse/device-fingerprint'
import type { GatehouseConfig } from './types'

/**
 * One config truth for the layers: each adapter turns the YAML config into its package's options
 * (the data part; the gateway adds stores, loggers and event sinks), and knows which YAML key each
 * option came from. The gateway builds its layers from these, and `loadConfig` runs each package's
 * own resolver on them, so `gatehouse config check` refuses exactly what `gatehouse` would, and
 * names the YAML key the operator wrote rather than the package's option.
 */
interface LayerAdapter<O> {
  /** The package, for messages. */
  readonly layer: string
  readonly options: (c: GatehouseConfig) => O
  /** The package's own resolver: throws what the package would throw at construction. */
  readonly resolve: (options: O) => unknown
  /** Option path → YAML path, most specific first (some depend on the form the YAML took). */
  readonly paths: ReadonlyArray<readonly [string, string]> | ((c: GatehouseConfig) => ReadonlyArray<readonly [string, string]>)
}

/** A key the config leaves unset is generated into the auth directory at start; the check resolves with a stand-in of the right size. */
const GENERATED_KEY = '0'.repeat(64)

export const ipFilterAdapter: LayerAdapter<Pick<IpFilterOptions, 'allowlist' | 'denylist'>> = {
  layer: '@gatehouse/ip-filter',
  options: (c) => ({
    allowlist: {
      enabled: c.server.security.ip_allowlist.enabled,
      allowedIps: c.server.security.ip_allowlist.allowed_ips,
      denyAll: c.server.security.ip_allowlist.deny_all,
    },
    denylist: Array.isArray(c.server.security.ip_denylist)
      ? c.server.security.ip_denylist
      : { enabled: c.server.security.ip_denylist.enabled, deniedIps: c.server.security.ip_denylist.denied_ips },
  }),
  resolve: (o) => resolveIpFilterConfig(o),
  paths: (c) => [
    ['allowlist.allowedIps', 'server.security.ip_allowlist.allowed_ips'],
    ['allowlist.denyAll', 'server.security.ip_allowlist.deny_all'],
    // The denylist may be written as a list of its own, or as { enabled, denied_ips }.
    ['denylist.deniedIps', Array.isArray(c.server.security.ip_denylist) ? 'server.security.ip_denylist' : 'server.security.ip_denylist.denied_ips'],
    ['denylist', 'server.security.ip_denylist'],
  ],
}

export const hstsAdapter: LayerAdapter<HstsOptions> = {
  layer: '@gatehouse/hsts',
  options: (c) => {
    const h = c.server.security.headers
    return {
      ...(h.strict_transport_security !== undefined ? { strictTransportSecurity: h.strict_transport_security } : {}),
      ...(h.content_type_options !== undefined ? { contentTypeOptions: h.content_type_options as 'nosniff' } : {}),
      ...(h.frame_options !== undefined ? { frameOptions: h.frame_options as 'DENY' } : {}),
      ...(h.xss_protection !== undefined ? { xssProtection: h.xss_protection as '0' } : {}),
      ...(h.content_security_policy !== undefined ? { contentSecurityPolicy: h.content_security_policy } : {}),
    }
  },
  resolve: (o) => resolveHstsConfig(o),
  paths: [
    ['strictTransportSecurity', 'server.security.headers.strict_transport_security'],
    ['contentTypeOptions', 'server.security.headers.content_type_options'],
    ['frameOptions', 'server.security.headers.frame_options'],
    ['xssProtection', 'server.security.headers.xss_protection'],
    ['contentSecurityPolicy', 'server.security.headers.content_security_policy'],
  ],
}

/** The providers the gateway serves (enabled, known). */
export const servedProviders = (c: GatehouseConfig): ProviderName[] =>
  Object.entries(c.providers)
    .filter(([name, pc]) => pc?.enabled && isProviderName(name))
    .map(([name]) => name as ProviderName)

/** secret_detection as request-guard's `secrets` (the per-key policies are the gateway's hook, see layers). */
function secretsOptions(c: GatehouseConfig): SecretsOptions | false {
  const d = c.secret_detection
  if (!d.enabled) return false
  return {
    ...(d.default !== undefined ? { default: d.default } : {}),
    ...(d.rules ? { rules: d.rules } : {}),
    ...(d.providers ? { providers: d.providers } : {}),
  }
}

export const requestGuardAdapter: LayerAdapter<{ bodyLimit: string | number; maxChoices: number; providers: Record<string, { maxTokens: number }>; secrets: SecretsOptions | false }> = {
  layer: '@gatehouse/request-guard',
  options: (c) => ({
    bodyLimit: c.server.body_limit,
    maxChoices: c.server.max_choices,
    providers: Object.fromEntries(servedProviders(c).map((p) => [p, { maxTokens: c.providers[p]?.max_tokens ?? 4096 }])),
    secrets: secretsOptions(c),
  }),
  resolve: (o) => resolveRequestGuardConfig(o),
  paths: [
    ['bodyLimit', 'server.body_limit'],
    ['maxChoices', 'server.max_choices'],
    ['secrets.providers', 'secret_detection.providers'],
    ['secrets.rules', 'secret_detection.rules'],
    ['secrets.default', 'secret_detection.default'],
    ['secrets', 'secret_detection'],
    // providers.<name>.maxTokens → providers.<name>.max_tokens
    ['providers', 'providers'],
    ['maxTokens', 'max_tokens'],
  ],
}

export const vaultAdapter: LayerAdapter<Pick<CredentialVaultOptions, 'dir' | 'encryption'>> = {
  layer: '@gatehouse/credential-vault',
  options: (c) => ({
    dir: c.auth.dir,
    encryption: {
      enabled: c.auth.encryption.enabled,
      // A key the config leaves unset is generated into the auth directory at start.
      ...(c.auth.encryption.key ? { key: c.auth.encryption.key } : { key: GENERATED_KEY }),
      ...(c.auth.encryption.previous_keys?.length ? { previousKeys: c.auth.encryption.previous_keys } : {}),
    },
  }),
  resolve: (o) => resolveCredentialVaultConfig(o),
  paths: [
    ['encryption.previousKeys', 'auth.encryption.previous_keys'],
    ['encryption.key', 'auth.encryption.key'],
    ['encryption', 'auth.encryption'],
  ],
}

export const jwtAdapter: LayerAdapter<JwtAuthOptions | undefined> = {
  layer: '@gatehouse/client-auth',
  options: (c) => {
    const j = c.auth.jwt
    if (!j || j.enabled === false) return undefined
    return {
      issuer: j.issuer,
      audience: j.audience,
      ...(j.jwks_uri ? { jwksUri: j.jwks_uri } : {}),
      ...(j.algorithms ? { algorithms: j.algorithms } : {}),
      ...(j.scope_claims ? { scopeClaims: j.scope_claims } : {}),
      ...(j.clock_tolerance !== undefined ? { clockTolerance: j.clock_tolerance } : {}),
      ...(j.jwks_cooldown !== undefined ? { jwksCooldown: j.jwks_cooldown } : {}),
    }
  },
  resolve: (o) => (o === undefined ? undefined : jwtVerifier(o)),
  paths: [
    ['jwt.jwksUri', 'auth.jwt.jwks_uri'],
    ['jwt.algorithms', 'auth.jwt.algorithms'],
    ['jwt.clockTolerance', 'auth.jwt.clock_tolerance'],
    ['jwt.jwksCooldown', 'auth.jwt.jwks_cooldown'],
    ['jwt.issuer', 'auth.jwt.issuer'],
    ['jwt.audience', 'auth.jwt.audience'],
    ['jwt', 'auth.jwt'],
  ],
}

export const auditLogAdapter: LayerAdapter<Pick<AuditLogOptions, 'file' | 'key' | 'events' | 'aggregateInterval' | 'maxSize' | 'daily' | 'maxFileAge' | 'retention'> | undefined> = {
  layer: '@gatehouse/audit-log',
  options: (c) => {
    const a = c.logging.audit
    if (!a.enabled) return undefined
    return {
      file: a.file,
      key: a.key ?? GENERATED_KEY,
      events: a.events,
      aggregateInterval: a.aggregate_interval,
      ...(a.max_size !== undefined ? { maxSize: a.max_size } : {}),
      ...(a.daily !== undefined ? { daily: a.daily } : {}),
      ...(a.max_file_age !== undefined ? { maxFileAge: a.max_file_age } : {}),
      ...(a.retention ? { retention: { ...(a.retention.max_files !== undefined ? { maxFiles: a.retention.max_files } : {}), ...(a.retention.max_age !== undefined ? { maxAge: a.retention.max_age } : {}) } } : {}),
    }
  },
  resolve: (o) => (o === undefined ? undefined : resolveAuditLogConfig(o)),
  paths: [
    ['aggregateInterval', 'logging.audit.aggregate_interval'],
    ['retention.maxFiles', 'logging.audit.retention.max_files'],
    ['retention.maxAge', 'logging.audit.retention.max_age'],
    ['maxFileAge', 'logging.audit.max_file_age'],
    ['maxSize', 'logging.audit.max_size'],
    ['daily', 'logging.audit.daily'],
    ['events', 'logging.audit.events'],
    ['file', 'logging.audit.file'],
    ['key', 'logging.audit.key'],
  ],
}

export const storageAdapter: LayerAdapter<Pick<StorageSinkOptions, 'url' | 'storeBodies' | 'retentionDays'> | undefined> = {
  layer: '@gatehouse/storage',
  options: (c) => {
    const st = c.storage
    if (!st.enabled || !st.url) return undefined
    return { url: st.url, storeBodies: st.store_bodies, retentionDays: st.retention_days }
  },
  resolve: (o) => (o === undefined ? undefined : resolveStorageSinkConfig(o)),
  paths: [
    ['retentionDays', 'storage.retention_days'],
    ['storeBodies', 'storage.store_bodies'],
    ['url', 'storage.url'],
  ],
}

/**
 * The alert rules and their webhook. notify_admin needs somewhere to post: the gateway leaves such
 * rules out when notify.webhook_url is unset (and warns), so the check resolves every rule, in the
 * config's order, against a stand-in webhook in that case.
 */
export const alertsAdapter: LayerAdapter<Pick<AlertEngineOptions, 'rules' | 'notify'>> = {
  layer: '@gatehouse/alerts',
  options: (c) => ({
    rules: c.alerts.map((r) => ({ ...r })),
    notify: c.notify.webhook_url ? { webhookUrl: c.notify.webhook_url } : {},
  }),
  resolve: (o) => {
    const notify = o.notify?.webhookUrl ? o.notify : { webhookUrl: 'https://webhook.invalid/' }
    // The engine's own validation, without building an engine (no store, no timers).
    resolveAlertEngineConfig({ ...o, notify, onBlockIp: () => undefined })
  },
  paths: [
    ['notify.webhookUrl', 'notify.webhook_url'],
    ['alerts', 'alerts'],
  ],
}

export const fingerprintAdapter: LayerAdapter<Pick<DeviceFingerprintOptions, 'dir' | 'header'> | undefined> = {
  layer: '@gatehouse/device-fingerprint',
  options: (c) => (c.device_fingerprint.enabled ? { dir: c.auth.dir, header: c.device_fingerprint.header } : undefined),
  resolve: (o) => (o === undefined ? undefined : resolveDeviceFingerprintConfig(o)),
  paths: [['header', 'device_fingerprint.header']],
}

/**
 * The upstream timeouts. The proxy refuses a timeout of 0 (it would never wait), which the YAML's
 * duration form allows: resolved here, `config check` refuses it as start does, by its YAML key.
 * The providers are the gateway's to give; the check resolves the timeouts against a stand-in.
 */
export const proxyAdapter: LayerAdapter<Required<Pick<ProxyOptions, 'timeouts'>>> = {
  layer: '@gatehouse/proxy',
  options: (c) => ({ timeouts: { connect: c.server.timeouts.connect, firstByte: c.server.timeouts.first_byte, idle: c.server.timeouts.idle } }),
  resolve: (o) => resolveProxyConfig({ ...o, providers: { openai: { baseUrl: 'https://upstream.invalid' } } }),
  paths: [
    ['timeouts.connect', 'server.timeouts.connect'],
    ['timeouts.firstByte', 'server.timeouts.first_byte'],
    ['timeouts.idle', 'server.timeouts.idle'],
  ],
}

const ADAPTERS: ReadonlyArray<LayerAdapter<never>> = [ipFilterAdapter, proxyAdapter, hstsAdapter, requestGuardAdapter, vaultAdapter, jwtAdapter, auditLogAdapter, storageAdapter, alertsAdapter, fingerprintAdapter] as never

/** A package's message with its option path put as the YAML key (`allowlist.allowedIps[0]` → `server.security.ip_allowlist.allowed_ips.0`). */
function inYamlTerms(adapter: LayerAdapter<never>, c: GatehouseConfig, message: string): string {
  let text = message.startsWith(`${adapter.layer}: `) ? message.slice(adapter.layer.length + 2) : message
  for (const [option, yaml] of typeof adapter.paths === 'function' ? adapter.paths(c) : adapter.paths) {
    const at = text.search(new RegExp(`(^|[\\s(])${option.replace(/\./g, '\\.')}(?=[.\\[:\\s]|$)`))
    if (at === -1) continue
    const start = text[at] === ' ' || text[at] === '(' ? at + 1 : at
    text = text.slice(0, start) + yaml + text.slice(start + option.length)
  }
  text = text.replace(/\[(\d+)\]/g, '.$1')
  // `key: what is wrong`, as every other configuration error reads.
  return text.replace(/^([a-z_]+(?:\.[a-z0-9_]+)+) (?!\()/, '$1: ')
}

/**
 * Run every layer's own resolver on the options this config gives it: the errors a start would
 * meet, each naming the YAML key.
 */
export function layerErrors(c: GatehouseConfig): string[] {
  const errors: string[] = []
  for (const adapter of ADAPTERS) {
    try {
      adapter.resolve(adapter.options(c) as never)
    } catch (err) {
      errors.push(inYamlTerms(adapter, c, err instanceof Error ? err.message : String(err)))
    }
  }
  return errors
}
