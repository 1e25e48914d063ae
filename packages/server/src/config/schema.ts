import { ENDPOINT_IDS, KEY_LIMIT_NAMES, PROVIDER_NAMES, PROVIDER_OBJECT_ID_PATTERN, PROVIDERS, type ProviderName } from '@gatehouse/core'
import { alertEngineOptionsSchema, alertRuleSchema } from '@gatehouse/alerts'
import { auditLogOptionsSchema, auditSinkOptionsSchema, httpsSinkOptionsSchema, syslogSinkOptionsSchema } from '@gatehouse/audit-log'
import { clientAuthOptionsSchema, jwtAuthOptionsSchema } from '@gatehouse/client-auth'
import { deviceFingerprintOptionsSchema } from '@gatehouse/device-fingerprint'
import { hstsOptionsSchema } from '@gatehouse/hsts'
import { ipFilterOptionsSchema } from '@gatehouse/ip-filter'
import { MAX_SHARED_OBJECTS, proxyOptionsSchema } from '@gatehouse/proxy'
import { metricsOptionsSchema, metricsServerOptionsSchema } from '@gatehouse/metrics'
import { quotaOptionsSchema, rateLimitOptionsSchema, tokenLimitOptionsSchema } from '@gatehouse/rate-limit'
import { requestGuardOptionsSchema } from '@gatehouse/request-guard'
import { storageSinkOptionsSchema } from '@gatehouse/storage'
import type { SchemaObject } from 'ajv'
import { optionKeys, snakeCased } from './compose'

/**
 * The JSON schema of a config file (SPEC §3). Every object refuses unknown keys, so a misspelled
 * key is an error with a did-you-mean hint, never silently ignored. Values are checked after
 * `${ENV}` interpolation; numbers may arrive as strings from the environment and are coerced.
 * A layer's keys come from the schema its package exports (`optionKeys`, in snake_case), narrowed
 * where the YAML takes a stricter form; the keys below are the server's own.
 */
const obj = (properties: Record<string, SchemaObject>, required: readonly string[] = []): SchemaObject => ({
  type: 'object',
  additionalProperties: false,
  properties,
  ...(required.length ? { required: [...required] } : {}),
})

const bool: SchemaObject = { type: 'boolean' }
const str: SchemaObject = { type: 'string' }
const nonEmpty: SchemaObject = { type: 'string', minLength: 1 }
const port: SchemaObject = { type: 'integer', minimum: 0, maximum: 65535 }
const positiveInt: SchemaObject = { type: 'integer', minimum: 1 }
const duration: SchemaObject = {
  anyOf: [
    { type: 'integer', minimum: 0 },
    { type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|h|d)\\s*$' },
  ],
  description: 'must be a duration such as "10s", "5m" or "250ms"',
}
const size: SchemaObject = {
  anyOf: [
    { type: 'integer', minimum: 1 },
    { type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*(b|kb|mb|gb)?\\s*$' },
  ],
  description: 'must be a size such as "10mb" or "512kb"',
}
const secrets = requestGuardOptionsSchema.properties!.secrets as { properties: Record<string, unknown> }
/** What outbound secret detection does with a rule's hits (rule ids are checked by request-guard). */
const secretPolicy: SchemaObject = obj(optionKeys(secrets, ['default', 'rules']))
const ipFilter = ipFilterOptionsSchema.properties
const guard = requestGuardOptionsSchema as { properties: Record<string, unknown> }
const guardProviders = guard.properties.providers as { properties: Record<string, { properties: Record<string, unknown> }> }
const proxyTimeouts = proxyOptionsSchema.properties.timeouts
/** The host names a loopback listener answers besides IP literals and localhost (the metrics server's option, also the gateway's). */
const allowedHosts = optionKeys(metricsServerOptionsSchema, ['allowedHosts'])
/** Requests per second and burst of a rate limiter (rate-limit's own bounds). */
const requestRate = optionKeys(rateLimitOptionsSchema, ['requestsPerSecond', 'burst'])
/** The security headers as hsts takes them; the YAML writes each as a header value (never false). */
const headerValues = optionKeys(hstsOptionsSchema, ['strictTransportSecurity', 'contentTypeOptions', 'frameOptions', 'xssProtection', 'contentSecurityPolicy'], {
  strict_transport_security: str,
  content_type_options: str,
  frame_options: str,
  xss_protection: str,
  content_security_policy: str,
})
/**
 * One audit sink: the syslog and HTTPS sinks' own options; the YAML names certificate and key
 * files (read by the server) where the package takes PEM text, and only https:// collectors.
 */
const auditSink = obj({
  ...optionKeys(auditSinkOptionsSchema, ['type']),
  ...optionKeys(syslogSinkOptionsSchema, ['name', 'host', 'port', 'servername', 'maxQueue', 'overflow']),
  ...optionKeys(httpsSinkOptionsSchema, ['url', 'headers'], { url: { type: 'string', pattern: '^https://' } }),
  ca_file: nonEmpty,
  cert_file: nonEmpty,
  key_file: nonEmpty,
})
/** Signed checkpoints: the audit log's own options, with the signing key as a file the server reads. */
const checkpoints = obj({
  ...optionKeys(auditLogOptionsSchema.properties.checkpoints, ['enabled', 'interval', 'logId'], { interval: duration }),
  signing_key_file: nonEmpty,
})

/** Account-selecting headers each provider takes from config (never from clients). */
const ACCOUNT_KEYS: Record<string, Record<string, SchemaObject>> = {
  claude: {},
  openai: { organization: str, project: str },
  gemini: { user_project: str },
}

const provider = (name: string): SchemaObject =>
  obj({
    enabled: bool,
    base_url: { type: 'string', pattern: '^https?://[^\\s/?#@]+(/[^\\s?#]*)?$', description: 'must be an http(s) URL without user name, password, query or fragment' },
    api_key: str,
    /** Endpoint ids (provider registry) this provider allows; default: its inference endpoints. */
    endpoints: {
      type: 'array',
      minItems: 1,
      items: { enum: ENDPOINT_IDS.filter((id) => id.startsWith(`${name}.`)) },
      description: `must be a non-empty list of ${name} endpoint ids (see the proxy README)`,
    },
    ...ACCOUNT_KEYS[name],
    /** Provider object ids every client key may refer to (the operator's own, made outside the gateway). */
    shared_objects: {
      type: 'array',
      maxItems: MAX_SHARED_OBJECTS,
      items: { type: 'string', pattern: PROVIDER_OBJECT_ID_PATTERN },
      description: `must be a list of at most ${MAX_SHARED_OBJECTS} provider object ids (vs_…, file-…, cachedContents/…)`,
    },
    /** Relay the provider's account-wide rate-limit headers (where it sends any): they show every tenant's use of the account. */
    ...(PROVIDERS[name as ProviderName].rateLimitHeaderPrefixes.length > 0 ? { relay_rate_limit_headers: bool } : {}),
    ...optionKeys(guardProviders.properties[name]!, ['maxTokens'], { max_tokens: positiveInt }),
    rate_limit: obj({
      ...optionKeys(rateLimitOptionsSchema, ['requestsPerMinute'], { requests_per_minute: positiveInt }),
      ...optionKeys(tokenLimitOptionsSchema, ['tokensPerMinute']),
    }),
    quota: obj(optionKeys(quotaOptionsSchema, ['limit', 'reset'], { limit: positiveInt }), ['limit']),
  })

export const configSchema: SchemaObject = obj({
  server: obj({
    host: nonEmpty,
    /** On a loopback address, the Host names answered besides IP literals and localhost (DNS rebinding). */
    ...allowedHosts,
    port,
    trust_proxy: {
      anyOf: [{ type: 'boolean' }, { type: 'integer', minimum: 0 }, nonEmpty, { type: 'array', items: nonEmpty }],
      description: 'must be false, a hop count, or a list of proxy addresses or CIDRs',
    },
    /** The largest body, and the most completions one request may ask for (n, best_of, candidateCount). */
    ...optionKeys(guard, ['bodyLimit', 'maxChoices'], { body_limit: size }),
    /** The proxy's upstream timeouts, and how long a stop waits for requests in flight (the server's own). */
    timeouts: obj({
      ...optionKeys(proxyTimeouts, ['connect', 'firstByte', 'idle'], { connect: duration, first_byte: duration, idle: duration }),
      shutdown_grace: duration,
    }),
    tls: obj({
      enabled: bool,
      cert_file: nonEmpty,
      key_file: nonEmpty,
      min_version: { enum: ['1.2', '1.3'] },
      cipher_suites: { type: 'array', items: nonEmpty },
    }),
    security: obj({
      ip_allowlist: snakeCased(ipFilter.allowlist),
      ip_denylist: snakeCased(ipFilter.denylist),
      rate_limiting: obj({ enabled: bool, ...requestRate, per_ip: bool }),
      /** Addresses and CIDRs block_ip alerts never block (loopback and trust_proxy entries never are either). */
      ...optionKeys(alertEngineOptionsSchema, ['neverBlock']),
      headers: obj({ enabled: bool, ...headerValues }),
      /** The listener's own: open client connections in all and from one address (gateway/connections.ts). */
      connections: obj({
        max: { anyOf: [positiveInt, { const: 'auto' }], description: 'must be a positive integer or "auto"' },
        per_ip: positiveInt,
      }),
    }),
    rate_limit: obj({ enabled: bool, ...requestRate }),
    maintenance_mode: bool,
    /** What maintenance and a provider's kill switch tell clients to wait (Retry-After); SDKs obey it. */
    retry_after: duration,
    message: str,
  }),
  auth: obj({
    client_auth: obj({ enabled: bool }),
    dir: nonEmpty,
    key_salt: str,
    ...optionKeys(clientAuthOptionsSchema, ['honeytokens']),
    encryption: obj({ enabled: bool, key: str, previous_keys: { type: 'array', items: str } }),
    /** OAuth credentials of the vault: in cluster mode, how long one gateway may hold a token's refresh lock (then another may refresh). */
    oauth: obj({ refresh_lease: duration }),
    /** Limits of every client key that does not carry its own (gatehouse keys create --rpm …). */
    key_limits: obj(Object.fromEntries(KEY_LIMIT_NAMES.map((name) => [name, positiveInt]))),
    /** Clients may also present a JWT of this OIDC issuer (client-auth's jwt option). */
    jwt: obj({ enabled: bool, ...optionKeys(jwtAuthOptionsSchema, ['issuer', 'audience', 'jwksUri', 'algorithms', 'scopeClaims', 'clockTolerance', 'jwksCooldown']) }),
  }),
  providers: {
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(PROVIDER_NAMES.map((p) => [p, provider(p)])),
  },
  store: obj({
    type: { enum: ['memory', 'redis'] },
    url: { type: 'string', pattern: '^rediss?://' },
    on_error: { enum: ['local', 'allow', 'deny'] },
    /** How many gateways share the store: with on_error local, each enforces limit ÷ replicas while Redis is down. */
    replicas: positiveInt,
    key_prefix: nonEmpty,
    /** With Redis: how long client keys are served from a replica's last copy while Redis is unreachable. */
    max_staleness: duration,
  }),
  logging: obj({
    level: { enum: ['error', 'warn', 'info', 'debug'] },
    audit: obj({
      enabled: bool,
      format: { enum: ['json'] },
      /**
       * file, key (a string in the YAML); events; aggregate_interval (repeated refusals of one kind from one address within it are one
       * line with a count; 0 writes each); rotation by size, UTC day and age; retention of the
       * rotated files (count, age).
       */
      ...optionKeys(auditLogOptionsSchema, ['file', 'key', 'events', 'aggregateInterval', 'maxSize', 'daily', 'maxFileAge', 'retention'], {
        key: str,
        aggregate_interval: duration,
        max_size: size,
        max_file_age: duration,
        retention: { type: 'object', properties: { max_age: duration } },
      }),
      /** Where every audit line is also shipped as it is written: syslog over TLS, or an HTTPS collector. */
      sinks: { type: 'array', items: auditSink },
      checkpoints,
    }),
  }),
  metrics: obj({
    enabled: bool,
    ...allowedHosts,
    ...optionKeys(metricsServerOptionsSchema, ['host', 'port', 'path']),
    ...optionKeys(metricsOptionsSchema, ['prefix']),
  }),
  alerts: {
    type: 'array',
    items: obj(optionKeys(alertRuleSchema, ['name', 'condition', 'duration', 'action', 'ttl'], { duration, ttl: duration }), alertRuleSchema.required),
  },
  notify: obj(optionKeys(alertEngineOptionsSchema.properties.notify, ['webhookUrl'])),
  management: obj({ enabled: bool, secret_key: str, allow_remote: bool }),
  device_fingerprint: obj({ enabled: bool, ...optionKeys(deviceFingerprintOptionsSchema, ['header']) }),
  secret_detection: obj({
    enabled: bool,
    ...optionKeys(secrets, ['default', 'rules', 'providers']),
    keys: { type: 'object', propertyNames: { pattern: '^key_[A-Za-z0-9_-]{1,64}$' }, additionalProperties: secretPolicy, description: 'must map client key ids (key_…) to a policy' },
  }),
  storage: obj({
    enabled: bool,
    ...optionKeys(storageSinkOptionsSchema, ['url', 'storeBodies', 'retentionDays'], { url: { type: 'string', pattern: '^postgres(ql)?://' }, retention_days: positiveInt }),
  }),
})

/** Config keys whose values are secrets: never quoted in an error. */
export const SECRET_CONFIG_KEYS = ['api_key', 'key', 'key_salt', 'secret_key', 'webhook_url', 'honeytokens', 'previous_keys', 'url']
