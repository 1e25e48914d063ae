import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PROVIDER_NAMES } from '@gatehouse/core'
import { ConfigError, configSchema, loadConfig } from '@gatehouse/server'
import type { ConfigPath } from '../src/config/types'

/**
 * Every key the config accepts is enforced or removed, and the schema, the config's type and this
 * table name the same keys. The schema's keys are walked (not listed here); the type's keys are
 * `ConfigPath`, which this table must cover exactly (the compiler refuses a missing or an extra
 * key). So a key added to the schema fails here until the type has it, and a key added to the type
 * fails to compile until it has a bad value here. Each bad value must be refused by loadConfig (the
 * loader `config check` and the start share) with an error under that key's YAML path; each key must
 * be read by name by the server's code, outside the schema, the defaults and the types (the way
 * `storage.store_bodies` once was accepted and did nothing).
 */

interface Bad {
  /** What the YAML writes at the key. */
  value: unknown
  /** Other YAML the case needs (the required keys of its object), merged under the key's own. */
  with?: Record<string, unknown>
  /** The path the error names, when not the key's own (the alert engine names the rule, `alerts.0 ("a")`). */
  named?: string
}

const ALERT = { name: 'a', condition: 'auth_failures > 1', duration: '1m', action: 'block_ip' }
const SINK = { type: 'https', url: 'https://logs.example.net/' }
const JWT = { issuer: 'https://login.example.com', audience: 'gatehouse' }
const long = 'n'.repeat(201)

const BAD = {
  'server.host': { value: [1] },
  'server.allowed_hosts': { value: ['a b'] },
  'server.port': { value: 70000 },
  'server.trust_proxy': { value: true },
  'server.body_limit': { value: '10xb' },
  'server.max_choices': { value: 0 },
  'server.timeouts.connect': { value: 0 },
  'server.timeouts.first_byte': { value: 'soon' },
  'server.timeouts.idle': { value: '0s' },
  'server.timeouts.shutdown_grace': { value: 'soon' },
  'server.tls.enabled': { value: 'perhaps' },
  'server.tls.cert_file': { value: 'missing.pem', with: { server: { tls: { enabled: true } } } },
  'server.tls.key_file': { value: 'missing.pem', with: { server: { tls: { enabled: true } } } },
  'server.tls.min_version': { value: '1.1' },
  'server.tls.cipher_suites': { value: ['TLS_NOPE'] },
  'server.security.ip_allowlist.enabled': { value: 'perhaps' },
  'server.security.ip_allowlist.allowed_ips': { value: ['10.0.0.0/33'], with: { server: { security: { ip_allowlist: { enabled: true } } } } },
  'server.security.ip_allowlist.deny_all': { value: 'perhaps' },
  'server.security.ip_denylist': { value: ['10.0.0.0/33'] },
  'server.security.ip_denylist.enabled': { value: 'perhaps' },
  'server.security.ip_denylist.denied_ips': { value: ['10.0.0.0/33'], with: { server: { security: { ip_denylist: { enabled: true } } } } },
  'server.security.rate_limiting.enabled': { value: 'perhaps' },
  'server.security.rate_limiting.requests_per_second': { value: 0 },
  'server.security.rate_limiting.burst': { value: 0 },
  'server.security.rate_limiting.per_ip': { value: 'perhaps' },
  // Over the alert engine's 64 characters: passed config check and stopped the start, until taken from its schema.
  'server.security.never_block': { value: ['x'.repeat(65)] },
  'server.security.connections.max': { value: 0 },
  'server.security.connections.per_ip': { value: 1.5 },
  'server.security.headers.enabled': { value: 'perhaps' },
  'server.security.headers.strict_transport_security': { value: 'includeSubDomains' },
  'server.security.headers.content_type_options': { value: 'sniff' },
  'server.security.headers.frame_options': { value: 'ALLOWALL' },
  'server.security.headers.xss_protection': { value: '2' },
  'server.security.headers.content_security_policy': { value: { directives: {} } },
  'server.rate_limit.enabled': { value: 'perhaps' },
  'server.rate_limit.requests_per_second': { value: 0 },
  'server.rate_limit.burst': { value: 0 },
  'server.maintenance_mode': { value: 'perhaps' },
  'server.retry_after': { value: 'soon' },
  'server.message': { value: [1] },
  'auth.client_auth.enabled': { value: 'perhaps' },
  'auth.dir': { value: [1] },
  'auth.key_salt': { value: [1] },
  'auth.honeytokens': { value: 'x' },
  'auth.encryption.enabled': { value: 'perhaps' },
  'auth.encryption.key': { value: 'short' },
  'auth.encryption.previous_keys': { value: ['short'] },
  'auth.oauth.refresh_lease': { value: '500ms' },
  'auth.key_limits.requests_per_minute': { value: 0 },
  'auth.key_limits.tokens_per_minute': { value: 0 },
  'auth.key_limits.monthly_tokens': { value: 0 },
  'auth.key_limits.concurrency': { value: 0 },
  'auth.jwt.enabled': { value: 'perhaps', with: { auth: { jwt: JWT } } },
  'auth.jwt.issuer': { value: 'not a url', with: { auth: { jwt: JWT } } },
  'auth.jwt.audience': { value: [], with: { auth: { jwt: JWT } } },
  'auth.jwt.jwks_uri': { value: 'not a url', with: { auth: { jwt: JWT } } },
  'auth.jwt.algorithms': { value: ['HS256'], with: { auth: { jwt: JWT } } },
  'auth.jwt.scope_claims.providers': { value: [1], with: { auth: { jwt: JWT } } },
  'auth.jwt.scope_claims.endpoints': { value: [1], with: { auth: { jwt: JWT } } },
  'auth.jwt.scope_claims.models': { value: [1], with: { auth: { jwt: JWT } } },
  'auth.jwt.scope_claims.objects': { value: [1], with: { auth: { jwt: JWT } } },
  'auth.jwt.clock_tolerance': { value: 301, with: { auth: { jwt: JWT } } },
  'auth.jwt.jwks_cooldown': { value: 0, with: { auth: { jwt: JWT } } },
  'auth.jwt.scope_claims.limits': { value: [1], with: { auth: { jwt: JWT } } },
  'providers.*.enabled': { value: 'perhaps' },
  'providers.*.base_url': { value: 'ftp://api.example.com' },
  'providers.*.api_key': { value: [1] },
  'providers.*.endpoints': { value: ['nope.messages'] },
  'providers.*.organization': { value: [1] },
  'providers.*.project': { value: [1] },
  'providers.*.user_project': { value: [1] },
  'providers.*.relay_rate_limit_headers': { value: 'yes' },
  'providers.*.shared_objects': { value: ['vs abc'] },
  'providers.*.max_tokens': { value: 0 },
  'providers.*.rate_limit.requests_per_minute': { value: 0 },
  'providers.*.rate_limit.tokens_per_minute': { value: 0 },
  'providers.*.quota.limit': { value: 0 },
  'providers.*.quota.reset': { value: 'weekly', with: { providers: { claude: { quota: { limit: 1 } } } } },
  'store.type': { value: 'etcd' },
  'store.url': { value: 'http://127.0.0.1:6379' },
  'store.on_error': { value: 'ignore' },
  'store.replicas': { value: 0 },
  'store.key_prefix': { value: [1] },
  'store.max_staleness': { value: 'soon' },
  'logging.level': { value: 'loud' },
  'logging.audit.enabled': { value: 'perhaps' },
  'logging.audit.file': { value: [1] },
  'logging.audit.format': { value: 'xml' },
  'logging.audit.key': { value: 'short' },
  'logging.audit.events': { value: ['everything'] },
  'logging.audit.aggregate_interval': { value: 'soon' },
  'logging.audit.max_size': { value: '10xb' },
  'logging.audit.daily': { value: 'perhaps' },
  'logging.audit.max_file_age': { value: 'weekly' },
  'logging.audit.retention.max_files': { value: -1 },
  'logging.audit.retention.max_age': { value: 'soon' },
  'logging.audit.sinks[].type': { value: 'tcp' },
  'logging.audit.sinks[].name': { value: long },
  'logging.audit.sinks[].host': { value: [1] },
  'logging.audit.sinks[].port': { value: 0 },
  'logging.audit.sinks[].servername': { value: [1] },
  'logging.audit.sinks[].max_queue': { value: 0 },
  'logging.audit.sinks[].overflow': { value: 'drop-all' },
  'logging.audit.sinks[].url': { value: 'http://logs.example.net/' },
  'logging.audit.sinks[].headers': { value: [1] },
  'logging.audit.sinks[].ca_file': { value: 'missing.pem' },
  'logging.audit.sinks[].cert_file': { value: 'missing.pem' },
  'logging.audit.sinks[].key_file': { value: 'missing.pem' },
  'logging.audit.checkpoints.enabled': { value: 'perhaps' },
  'logging.audit.checkpoints.interval': { value: 'soon' },
  'logging.audit.checkpoints.signing_key_file': { value: 'missing.pem', with: { logging: { audit: { checkpoints: { enabled: true } } } } },
  'logging.audit.checkpoints.log_id': { value: 'a b' },
  'metrics.enabled': { value: 'perhaps' },
  'metrics.host': { value: [1] },
  'metrics.allowed_hosts': { value: ['a b'] },
  'metrics.port': { value: 70000 },
  'metrics.path': { value: 'metrics' },
  'metrics.prefix': { value: [1] },
  'alerts[].name': { value: long },
  'alerts[].condition': { value: 'auth_failures >' },
  'alerts[].duration': { value: '30d', named: 'alerts.0' },
  'alerts[].action': { value: 'page' },
  'alerts[].ttl': { value: 'soon' },
  'notify.webhook_url': { value: 'ftp://hooks.example.net/x', with: { alerts: [{ ...ALERT, action: 'notify_admin' }] } },
  'management.enabled': { value: 'perhaps' },
  'management.secret_key': { value: [1] },
  'management.allow_remote': { value: 'perhaps' },
  'device_fingerprint.enabled': { value: 'perhaps' },
  'device_fingerprint.header': { value: 'Host' },
  'storage.enabled': { value: 'perhaps' },
  'storage.url': { value: 'mysql://127.0.0.1/gh' },
  'storage.store_bodies': { value: 'perhaps' },
  'storage.retention_days': { value: 0 },
  'secret_detection.enabled': { value: 'perhaps' },
  'secret_detection.default': { value: 'redact' },
  'secret_detection.rules': { value: { 'github-tokn': 'block' } },
  'secret_detection.providers.*.default': { value: 'redact' },
  'secret_detection.providers.*.rules': { value: { bogus: 'block' } },
  'secret_detection.keys': { value: { 'not-a-key-id': {} } },
} satisfies Record<ConfigPath, Bad>

type Schema = { type?: string | string[]; properties?: Record<string, Schema>; items?: Schema; enum?: unknown[]; anyOf?: Schema[]; allOf?: Schema[] }

/** Maps whose keys are data (secret rule ids), though their schema lists them: one key each. */
const isMap = (path: string): boolean => path.startsWith('secret_detection') && /(^|\.)rules$/.test(path)
const isProvider = (name: string): boolean => (PROVIDER_NAMES as readonly string[]).includes(name)

/**
 * The YAML key paths a schema accepts, in ConfigPath's notation. Each branch of an anyOf is a form
 * the key may take (`ip_denylist` is a list or an object); an allOf narrowed to a scalar (a header
 * written as a string where hsts also takes an object) is one key.
 */
function keysOf(schema: Schema, path: string): Map<string, Schema> {
  const out = new Map<string, Schema>()
  const add = (m: Map<string, Schema>): void => m.forEach((s, p) => out.has(p) || out.set(p, s))
  const scalar = (s: Schema): boolean => s.type !== undefined && s.type !== 'object' && s.type !== 'array'
  if (isMap(path)) out.set(path, schema)
  else if (schema.anyOf) schema.anyOf.forEach((s) => add(keysOf(s, path)))
  else if (schema.allOf) {
    if (schema.allOf.some(scalar)) out.set(path, schema)
    else schema.allOf.forEach((s) => add(keysOf(s, path)))
  } else if (schema.properties) {
    const under = (k: string): string => (path ? `${path}.${path.endsWith('providers') && isProvider(k) ? '*' : k}` : k)
    for (const [k, v] of Object.entries(schema.properties)) add(keysOf(v, under(k)))
  } else if (schema.type === 'array' && schema.items) {
    const items = keysOf(schema.items, `${path}[]`)
    if ([...items.keys()].every((p) => p === `${path}[]`)) out.set(path, schema)
    else add(items)
  } else out.set(path, schema)
  return out
}

/** A key path made concrete: the first item of a list; the first provider whose schema has the key. */
function concrete(path: string): string {
  const providers = (configSchema as Schema).properties!.providers!.properties!
  const m = /^providers\.\*\.([a-z_]+)/.exec(path)
  const provider = m ? PROVIDER_NAMES.find((p) => m[1]! in providers[p]!.properties!)! : 'openai'
  return path.replace(/\[\]/g, '.0').replace('*', provider)
}

/** `with`, plus what every case under a list item or the JWT needs, plus the bad value at its path. */
function document(path: ConfigPath, bad: Bad): Record<string, unknown> {
  const doc = structuredClone(bad.with ?? {})
  const lists: Record<string, unknown> = { 'alerts[]': ALERT, 'logging.audit.sinks[]': SINK }
  const set = (at: string, value: unknown): void => {
    const keys = at.split('.')
    let node = doc as Record<string, unknown>
    keys.slice(0, -1).forEach((k, i) => {
      node[k] ??= /^\d+$/.test(keys[i + 1]!) ? [] : {}
      node = node[k] as Record<string, unknown>
    })
    node[keys.at(-1)!] = value
  }
  for (const [list, item] of Object.entries(lists)) if (path.startsWith(list) && !bad.with) set(concrete(list), structuredClone(item))
  set(concrete(path), bad.value)
  return doc
}

function errorsOf(doc: Record<string, unknown>, dir: string): string[] {
  const file = join(dir, 'config.yaml')
  writeFileSync(file, JSON.stringify(doc))
  try {
    loadConfig({ file, env: {}, cwd: dir })
  } catch (e) {
    if (e instanceof ConfigError) return e.errors
    throw e
  }
  return []
}

function serverCode(dir: string): string {
  return readdirSync(dir)
    .map((name) => join(dir, name))
    .map((p) => (statSync(p).isDirectory() ? serverCode(p) : p.endsWith('.ts') && !/config[\\/](schema|defaults|types)\.ts$/.test(p) ? readFileSync(p, 'utf8') : ''))
    .join('\n')
}

/** Keys handed on whole to a package (spread), which reads them there. */
const PASSED_WHOLE: Partial<Record<ConfigPath, string>> = {
  'alerts[].duration': 'each alert rule is given to the alert engine as written (alertsAdapter)',
  'alerts[].ttl': 'each alert rule is given to the alert engine as written (alertsAdapter)',
}

describe('every config key is enforced', () => {
  const keys = keysOf(configSchema as Schema, '')
  let dir: string
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'gh-keys-'))))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('the schema, the config type and the bad values name the same keys', () => {
    expect([...keys.keys()].sort()).toEqual(Object.keys(BAD).sort())
  })

  it.each(Object.entries(BAD) as Array<[ConfigPath, Bad]>)('refuses a bad %s, naming its YAML path', (path, bad) => {
    const at = bad.named ?? concrete(path)
    const errors = errorsOf(document(path, bad), dir)
    expect(errors.filter((e) => e === at || [':', '.', ' '].some((c) => e.startsWith(at + c)))).not.toEqual([])
  })

  it('reads each key by name in the server (or hands it on whole)', () => {
    const code = serverCode(join(__dirname, '..', 'src'))
    const unread = [...keys]
      .filter(([path, schema]) => !(schema.enum && schema.enum.length === 1) && !PASSED_WHOLE[path as ConfigPath])
      .filter(([path]) => !new RegExp(`[.'"\`]${path.split('.').pop()!.replace('[]', '')}\\b`).test(code))
      .map(([path]) => path)
    expect(unread).toEqual([])
  })
})
