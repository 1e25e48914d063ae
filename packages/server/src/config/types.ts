import type { KeyLimits, ProviderName, SecurityEventType } from '@gatehouse/core'

export type Duration = string | number

export interface ProviderConfig {
  enabled: boolean
  base_url: string
  /** The upstream credential (env-interpolated); the credential vault is the other source. */
  api_key?: string
  /** Endpoint ids this provider allows (provider registry); default: its inference endpoints. */
  endpoints?: string[]
  /** OpenAI account headers (`OpenAI-Organization`, `OpenAI-Project`) sent with `api_key`. */
  organization?: string
  project?: string
  /** Gemini `x-goog-user-project` sent with `api_key`. */
  user_project?: string
  /**
   * Relay the provider's account-wide `x-ratelimit-*` / `anthropic-ratelimit-*` headers. They show
   * the shared upstream account, so every tenant's use of it. @default false
   */
  relay_rate_limit_headers?: boolean
  /**
   * Provider object ids every client key may refer to besides those it made through the gateway
   * (the operator's own, made outside it: a vector store, a cached content). @default [] (none)
   */
  shared_objects?: string[]
  max_tokens: number
  rate_limit?: { requests_per_minute?: number; tokens_per_minute?: number }
  quota?: { limit: number; reset: 'monthly' }
}

export interface AlertRule {
  name: string
  condition: string
  duration: Duration
  action: 'notify_admin' | 'block_ip'
  /** How long a block_ip entry lasts. @default '1h' */
  ttl?: Duration
}

/** The whole configuration, after defaults are applied (SPEC §3). */
export interface GatehouseConfig {
  server: {
    host: string
    /** Host names answered on a loopback address besides IP literals and localhost. */
    allowed_hosts: string[]
    port: number
    trust_proxy: boolean | number | string | string[]
    body_limit: string | number
    max_choices: number
    timeouts: { connect: Duration; first_byte: Duration; idle: Duration; shutdown_grace: Duration }
    tls: { enabled: boolean; cert_file?: string; key_file?: string; min_version: '1.2' | '1.3'; cipher_suites?: string[] }
    security: {
      ip_allowlist: { enabled: boolean; allowed_ips: string[]; deny_all: boolean }
      ip_denylist: { enabled: boolean; denied_ips: string[] } | string[]
      rate_limiting: { enabled: boolean; requests_per_second: number; burst: number; per_ip: boolean }
      never_block: string[]
      /**
       * Open client connections: in all (default: half the file descriptors the process may open
       * after a reserve, 64 to 16384) and from one address (default 256; IPv6 by its /64).
       */
      connections?: { max?: number | 'auto'; per_ip?: number }
      headers: {
        enabled: boolean
        strict_transport_security?: string
        content_type_options?: string
        frame_options?: string
        xss_protection?: string
        content_security_policy?: string
      }
    }
    rate_limit: { enabled: boolean; requests_per_second: number; burst: number }
    maintenance_mode: boolean
    retry_after: Duration
    message: string
  }
  auth: {
    client_auth: { enabled: boolean }
    dir: string
    key_salt?: string
    honeytokens: string[]
    encryption: { enabled: boolean; key?: string; previous_keys?: string[] }
    /** refresh_lease: the cluster's OAuth refresh lock lease (default: the refresh timeout + 5 s). */
    oauth?: { refresh_lease?: Duration }
    /** Limits of every client key without its own. */
    key_limits: KeyLimits
    jwt?: { enabled?: boolean; issuer: string; audience: string | string[]; jwks_uri?: string; algorithms?: string[]; scope_claims?: { providers?: string; endpoints?: string; models?: string; objects?: string; limits?: string }; clock_tolerance?: number; jwks_cooldown?: number }
  }
  providers: Partial<Record<ProviderName, ProviderConfig>>
  store: { type: 'memory' | 'redis'; url?: string; on_error: 'local' | 'allow' | 'deny'; replicas: number; key_prefix: string; max_staleness: Duration }
  logging: {
    level: 'error' | 'warn' | 'info' | 'debug'
    audit: {
      enabled: boolean
      file: string
      format: 'json'
      events: SecurityEventType[]
      key?: string
      aggregate_interval: Duration
      /** Rotation: a new file past this size, at each UTC day, past this age (0: off). */
      max_size?: string | number
      daily?: boolean
      max_file_age?: Duration
      /** Which rotated files are kept (0: no limit); older ones are deleted after a chained record names them. */
      retention?: { max_files?: number; max_age?: Duration }
      sinks?: AuditSinkConfig[]
      checkpoints?: { enabled?: boolean; interval?: Duration; signing_key_file?: string; log_id?: string }
    }
  }
  metrics: { enabled: boolean; host: string; allowed_hosts: string[]; port: number; path: string; prefix: string }
  alerts: AlertRule[]
  notify: { webhook_url?: string }
  management: { enabled: boolean; secret_key?: string; allow_remote: boolean }
  device_fingerprint: { enabled: boolean; header: string }
  storage: { enabled: boolean; url?: string; store_bodies: boolean; retention_days: number }
  /** Outbound secret detection in request bodies (request-guard's `secrets`). */
  secret_detection: SecretDetectionConfig
}

export type SecretAction = 'block' | 'mask' | 'log' | 'off'
export interface SecretPolicyConfig {
  /** For rules not listed (and not blocked by default). */
  default?: SecretAction
  /** By rule id (`gatehouse-check`'s and core's SECRET_RULES ids). */
  rules?: Record<string, SecretAction>
}
export interface SecretDetectionConfig extends SecretPolicyConfig {
  enabled: boolean
  providers?: Partial<Record<ProviderName, SecretPolicyConfig>>
  /** By client key id (key_…): a key's own policy, over the provider's. */
  keys?: Record<string, SecretPolicyConfig>
}

/** One audit sink as the YAML writes it (logging.audit.sinks). */
export interface AuditSinkConfig {
  type: 'syslog' | 'https'
  name?: string
  host?: string
  port?: number
  servername?: string
  url?: string
  headers?: Record<string, string>
  ca_file?: string
  cert_file?: string
  key_file?: string
  max_queue?: number
  overflow?: 'drop-oldest' | 'drop-newest'
}

/**
 * Every YAML key of the config, as a path: `server.tls.min_version`; a list's items as
 * `alerts[].ttl`; a provider's keys as `providers.*.base_url` (the provider names are data); a map
 * whose keys are data (`secret_detection.keys`, a sink's `headers`) is one key.
 *
 * This is what ties the type to the schema. The schema cannot be typed `JSONSchemaType<…>`: it is
 * composed at start from the packages' schemas (snake-cased, so ajv's types cannot follow), the YAML
 * has every key optional while this type is the config after defaults, and the narrowings are
 * `allOf`s JSONSchemaType does not express; deriving the type instead needs json-schema-to-ts, which
 * cannot follow the composition either. So the keys are tied, both ways: `config-keys.test.ts` keeps
 * one bad value per `ConfigPath` (the compiler refuses a missing or extra one) and checks that the
 * schema's keys are exactly those and that each bad value is refused under its path.
 */
export type ConfigPath = KeyPaths<GatehouseConfig>

type Scalar = string | number | boolean
type Join<P extends string, K extends string> = P extends '' ? K : `${P}.${K}`
type KeyPaths<T, P extends string = ''> = T extends Scalar
  ? P
  : T extends ReadonlyArray<infer E>
    ? E extends Scalar
      ? P
      : KeyPaths<E, `${P}[]`>
    : string extends keyof T
      ? P
      : { [K in keyof T & string]-?: KeyPaths<NonNullable<T[K]>, Join<P, K extends ProviderName ? '*' : K>> }[keyof T & string]
