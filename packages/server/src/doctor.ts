import { existsSync } from 'node:fs'
import { resolve as resolvePath } from 'node:path'
import { DOCUMENTED_CLIENT_KEYS, PROVIDER_NAMES, isLoopback, type ProviderName } from '@gatehouse/core'
import { plaintextCredentialFiles } from '@gatehouse/credential-vault'
import { credentialHint } from './layers/credential-check'
import { defaultMaxConnections, openFileLimit, RESERVED_FDS } from './gateway/connections'
import { checkPermissions } from '@gatehouse/security-check'
import type { GatehouseConfig } from './config/types'

export type Severity = 'high' | 'medium' | 'low'

export interface PostureFinding {
  id: string
  severity: Severity
  /** What is risky. */
  message: string
  /** What to do about it. */
  fix: string
}

/** Values that are examples or placeholders, never real secrets. */
const PLACEHOLDERS = new Set(['changeme', 'change-me', 'secret', 'password', 'your-key-here', 'your-secret-key', 'example', 'test', 'admin'])

const isPlaceholder = (v: string | undefined): boolean =>
  v !== undefined && (PLACEHOLDERS.has(v.toLowerCase()) || DOCUMENTED_CLIENT_KEYS.includes(v) || /^(x+|\*+|0+)$/i.test(v))

const beyondLoopback = (host: string): boolean => host !== 'localhost' && !isLoopback(host)

/**
 * The security posture of a config and its files: every risky setting, with a severity and the fix.
 * `gatehouse doctor` prints them and exits 1 on any high one; the server runs the same checks at
 * start and exposes their count as a metric.
 */
export async function diagnose(config: GatehouseConfig, cwd = process.cwd(), withoutCredential?: readonly ProviderName[]): Promise<PostureFinding[]> {
  const f: PostureFinding[] = []
  const add = (id: string, severity: Severity, message: string, fix: string): void => void f.push({ id, severity, message, fix })
  // A running gateway knows what its vault holds; from the config alone, a provider with no
  // api_key may still have a credential in the vault, and the finding says so.
  const known = withoutCredential !== undefined
  const missing =
    withoutCredential ?? PROVIDER_NAMES.filter((p) => config.providers[p]?.enabled && !config.providers[p]?.api_key)
  for (const p of missing) {
    add(
      `provider-without-credential:${p}`,
      'medium',
      `Provider ${p} has no credential${known ? '' : ` in the config (unless the vault in ${config.auth.dir} holds one)`}: its requests are refused with 403 and /readyz answers 503`,
      credentialHint(p),
    )
  }
  const tls = config.server.tls.enabled

  if (!config.auth.client_auth.enabled) {
    add('client-auth-off', 'high', 'Client auth is off: anyone who can reach the gateway spends your provider credentials', 'Turn auth.client_auth.enabled on (and unset ENABLE_CLIENT_AUTH=false)')
  }
  const mk = config.management.secret_key
  if (config.management.enabled && mk === undefined) {
    add('management-off', 'low', 'The management API is off because management.secret_key is unset', 'Set GATEHOUSE_MANAGEMENT_KEY to a random value of 32+ characters to use it')
  } else if (config.management.enabled && mk !== undefined && (mk.length < 24 || isPlaceholder(mk))) {
    add('management-key-weak', 'high', 'The management key is short or a placeholder', 'Use 32 or more random characters: openssl rand -base64 32')
  }
  if (config.management.enabled && mk && config.management.allow_remote && !tls) {
    add('management-remote-plaintext', 'high', 'The management API accepts remote callers over plain HTTP: its key crosses the network in clear', 'Enable server.tls, or keep management.allow_remote false')
  }
  if (beyondLoopback(config.server.host) && !tls) {
    add('bind-plaintext', 'high', `The gateway listens on ${config.server.host} without TLS: client keys cross the network in clear`, 'Enable server.tls, or bind 127.0.0.1 behind a TLS-terminating proxy (and set trust_proxy to it)')
  }
  if (config.metrics.enabled && beyondLoopback(config.metrics.host)) {
    add('metrics-exposed', 'medium', `Metrics listen on ${config.metrics.host}: they reveal client addresses and traffic`, 'Bind metrics.host to 127.0.0.1 and scrape through a private network')
  }
  if (config.server.trust_proxy === true) {
    add('trust-proxy-all', 'high', 'trust_proxy: true lets any client forge its address', 'Use a hop count or the proxy CIDRs')
  }
  if (!config.auth.encryption.enabled) {
    add('encryption-off', 'high', 'Upstream credentials are stored unencrypted', 'Set auth.encryption.enabled: true and GATEHOUSE_ENCRYPTION_KEY (32 random bytes)')
  } else if (!config.auth.encryption.key) {
    add('encryption-key-local', 'medium', 'The encryption key was generated into the auth directory, next to the credentials it protects', 'Set GATEHOUSE_ENCRYPTION_KEY from a secret store, then run gatehouse vault rotate-key')
  } else if (isPlaceholder(config.auth.encryption.key)) {
    add('encryption-key-weak', 'high', 'The encryption key is a placeholder', 'Generate one: openssl rand -hex 32')
  }
  for (const [name, p] of Object.entries(config.providers)) {
    if (p?.api_key && isPlaceholder(p.api_key)) {
      add(`provider-key-sample-${name}`, 'high', `providers.${name}.api_key is a sample or placeholder value`, 'Set the real key through the environment')
    }
    if (p && !p.base_url.startsWith('https://') && !isLoopback(new URL(p.base_url).hostname)) {
      add(`provider-plaintext-${name}`, 'high', `providers.${name}.base_url is plain HTTP to a remote host: the provider key crosses the network in clear`, 'Use the https:// URL')
    }
  }
  const honey = new Set(config.auth.honeytokens)
  for (const k of DOCUMENTED_CLIENT_KEYS) if (honey.has(k)) honey.delete(k)
  if ([config.management.secret_key, config.auth.key_salt].some((v) => v !== undefined && (honey.has(v) || DOCUMENTED_CLIENT_KEYS.includes(v)))) {
    add('honeytoken-as-secret', 'high', 'A honeytoken or documented sample key is configured as a real secret', 'Replace it with a freshly generated value')
  }
  if (tls && !config.server.security.headers.enabled) {
    add('hsts-off', 'medium', 'TLS is on but the security headers (HSTS among them) are off', 'Set server.security.headers.enabled: true')
  }
  if (!config.server.security.rate_limiting.enabled && !config.server.rate_limit.enabled) {
    add('rate-limits-off', 'medium', 'No rate limit is on: one client can exhaust your provider quota', 'Enable server.security.rate_limiting (per IP) and provider rate limits')
  }
  const maxConnections = config.server.security.connections?.max
  const files = openFileLimit()
  if (typeof maxConnections === 'number' && files !== undefined && maxConnections > files - RESERVED_FDS) {
    add(
      'connections-over-descriptors',
      'high',
      `server.security.connections.max ${maxConnections} is more than this process may open (ulimit -n ${files}, less ${RESERVED_FDS} for upstream sockets and files): a flood of connections takes the descriptors every tenant needs`,
      `Set it to auto (${defaultMaxConnections()} here), or raise ulimit -n (LimitNOFILE in a systemd unit)`,
    )
  }
  for (const [name, p] of Object.entries(config.providers)) {
    if (p?.enabled && p.relay_rate_limit_headers) {
      add(
        `rate-limit-headers-relayed:${name}`,
        'medium',
        `providers.${name}.relay_rate_limit_headers is on: every client sees the shared provider account's rate-limit figures, and so the other clients' use of it`,
        'Turn it off unless one tenant owns the gateway; auth.key_limits gives each client its own figures',
      )
    }
  }
  if (!config.logging.audit.enabled) {
    add('audit-off', 'medium', 'The audit log is off: incidents cannot be reconstructed', 'Set logging.audit.enabled: true')
  } else if (!config.logging.audit.key) {
    add('audit-key-local', 'low', 'The audit log key was generated into the auth directory: whoever can edit the log may also re-chain it', 'Set logging.audit.key (GATEHOUSE_AUDIT_KEY) from a secret store')
  }
  if (config.alerts.some((a) => a.action === 'notify_admin') && !config.notify.webhook_url) {
    add('alerts-no-webhook', 'low', 'notify_admin alerts have nowhere to post', 'Set notify.webhook_url (SLACK_WEBHOOK_URL)')
  }
  if (config.store.type === 'redis' && config.store.url?.startsWith('redis://') && !isLoopback(new URL(config.store.url).hostname)) {
    add('redis-plaintext', 'medium', 'Redis is reached over plain TCP on a remote host', 'Use rediss:// (TLS) or a private network')
  }
  const authDir = resolvePath(cwd, config.auth.dir)
  if (existsSync(authDir)) {
    const perms = await checkPermissions({ paths: [authDir], cwd })
    for (const p of perms.findings) add(`auth-permissions:${p.path}`, 'high', p.message, `gatehouse-check permissions ${config.auth.dir} --fix`)
    if (config.auth.encryption.enabled) {
      for (const name of plaintextCredentialFiles(authDir)) {
        add(
          `vault-plaintext:${name}`,
          'high',
          `${config.auth.dir}/${name} is a plaintext credential file while encryption is on: the gateway refuses it (anyone who can write the directory could have planted it)`,
          'If it is yours, encrypt it: gatehouse vault migrate; otherwise delete it and find out who wrote it',
        )
      }
    }
  }
  return f
}

export function countBySeverity(findings: readonly PostureFinding[]): Record<Severity, number> {
  const out: Record<Severity, number> = { high: 0, medium: 0, low: 0 }
  for (const x of findings) out[x.severity]++
  return out
}
