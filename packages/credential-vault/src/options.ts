import {
  PROVIDER_NAMES,
  PROVIDERS,
  createOptionsResolver,
  isLogger,
  isProviderName,
  noopLogger,
  parseDuration,
  type Logger,
  type ProviderName,
  type SecurityEventHandler,
} from '@gatehouse/core'
import type { VaultClusterOptions } from './cluster'
import { PKG, configError } from './errors'
import { Keyring, parseEncryptionKey, type EncryptionKeyInput } from './keyring'

type Duration = string | number

/** Encryption at rest (SPEC `auth.encryption`). */
export interface VaultEncryptionOptions {
  /**
   * Encrypt credential files with AES-256-GCM. Turning it off stores plaintext JSON (still 0600).
   * @default true
   */
  enabled?: boolean | undefined
  /**
   * The current key: 32 bytes given raw, as 64 hex characters or as base64. New and rewritten
   * files are encrypted under it. Required when `enabled`.
   */
  key?: EncryptionKeyInput | undefined
  /**
   * Older keys, still accepted for decryption while `rotateKey`/`reencryptAll` re-encrypts every
   * file under `key`. Remove them once the rotation has run.
   * @default []
   */
  previousKeys?: EncryptionKeyInput[] | undefined
}

export interface CredentialVaultOptions {
  /** The credential directory (SPEC `auth.dir`). Created 0700 when missing (see `createDir`). */
  dir: string
  /** @default { enabled: true } */
  encryption?: VaultEncryptionOptions | undefined
  /**
   * Accept credential files that are group- or world-accessible, symlinks, or owned by another
   * user (e.g. a Kubernetes secret volume). Each is still reported once through the logger and a
   * `security_violation` event. Security: leave off unless the directory is protected otherwise.
   * @default false
   */
  allowInsecurePermissions?: boolean | undefined
  /** Create `dir` (mode 0700) when it does not exist. @default true */
  createDir?: boolean | undefined
  /** Watch `dir` with fs.watch so added, changed and removed files take effect at once. @default true */
  watch?: boolean | undefined
  /** Rescan `dir` this often, as a fallback for platforms where fs.watch misses events; 0 disables. @default "30s" */
  rescanInterval?: Duration | undefined
  /** Wait this long after the last fs.watch event before rescanning. @default "100ms" */
  reloadDebounce?: Duration | undefined
  /**
   * Static API keys per provider (the server passes `providers.<name>.api_key`), served in the
   * pool next to the vault's credentials, never written to disk.
   * @default {}
   */
  staticCredentials?: { [P in ProviderName]?: string | undefined } | undefined
  /**
   * Account-selecting headers sent with a provider's static credential (`openai-organization`,
   * `openai-project`, `x-goog-user-project`: the names the provider registry lists for it). They
   * come only from here, never from a client.
   */
  staticAccountHeaders?: { [P in ProviderName]?: Record<string, string> | undefined } | undefined
  /** How long a credential the upstream rejected (401/403) is skipped. @default "60s" */
  unhealthyCooldown?: Duration | undefined
  /** Time limit of one OAuth refresh request. @default "30s" */
  refreshTimeout?: Duration | undefined
  /** Refresh an OAuth access token this long before it expires. @default "60s" */
  refreshSkew?: Duration | undefined
  /** First wait after a failed refresh; doubles on each further failure. @default "30s" */
  refreshBackoff?: Duration | undefined
  /** The longest wait between refresh attempts. @default "30m" */
  refreshBackoffMax?: Duration | undefined
  /** Largest credential file read, in bytes. @default 1048576 */
  maxFileBytes?: number | undefined
  /**
   * Several gateways with the same credentials (cluster mode): OAuth refresh is single-flight
   * across all of them through this Redis, and the refreshed tokens are shared there, encrypted
   * under the vault's key (so encryption must be on). Credentials are matched by id: the gateways
   * hold the same credential files, or, with `cluster.records`, the records themselves are kept in
   * Redis (encrypted the same way) and the directory is not read.
   */
  cluster?: VaultClusterOptions | undefined
  /** Receives `credential_access`, `token_refresh`, `config_change` and `security_violation` events. */
  onEvent?: SecurityEventHandler | undefined
  /** @default no-op */
  logger?: Logger | undefined
}

/** The resolved, frozen vault configuration. */
export interface CredentialVaultConfig {
  readonly dir: string
  readonly encryptionEnabled: boolean
  readonly keyring: Keyring | undefined
  readonly allowInsecurePermissions: boolean
  readonly createDir: boolean
  readonly watch: boolean
  readonly rescanIntervalMs: number
  readonly reloadDebounceMs: number
  /** Non-enumerable: never serialised with the config. */
  readonly staticCredentials: Readonly<Partial<Record<ProviderName, string>>>
  readonly staticAccountHeaders: Readonly<Partial<Record<ProviderName, Readonly<Record<string, string>>>>>
  readonly unhealthyCooldownMs: number
  readonly refreshTimeoutMs: number
  readonly refreshSkewMs: number
  readonly refreshBackoffMs: number
  readonly refreshBackoffMaxMs: number
  readonly maxFileBytes: number
  readonly onEvent: SecurityEventHandler | undefined
  readonly logger: Logger
  /** Non-enumerable: the cluster's Redis client. */
  readonly cluster: VaultClusterOptions | undefined
}

const duration = { anyOf: [{ type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|h|d)\\s*$' }, { type: 'number', minimum: 0 }] }

/** JSON schema of the data-shaped vault options (functions and secrets are checked by hand). */
export const credentialVaultOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['dir'],
  properties: {
    dir: { type: 'string', minLength: 1 },
    allowInsecurePermissions: { type: 'boolean' },
    createDir: { type: 'boolean' },
    watch: { type: 'boolean' },
    rescanInterval: duration,
    reloadDebounce: duration,
    unhealthyCooldown: duration,
    refreshTimeout: duration,
    refreshSkew: duration,
    refreshBackoff: duration,
    refreshBackoffMax: duration,
    maxFileBytes: { type: 'integer', minimum: 1024, maximum: 16 * 1024 * 1024 },
  },
} as const

const HAND_CHECKED = ['encryption', 'staticCredentials', 'staticAccountHeaders', 'onEvent', 'logger', 'cluster'] as const
const resolveData = createOptionsResolver<Omit<CredentialVaultOptions, (typeof HAND_CHECKED)[number]>>({
  pkg: PKG,
  codePrefix: 'GH_VAULT',
  schema: credentialVaultOptionsSchema,
  handChecked: HAND_CHECKED,
})

const ms = (value: Duration | undefined, fallback: Duration, name: string): number => {
  try {
    return parseDuration(value ?? fallback, name)
  } catch (err) {
    throw configError((err as Error).message)
  }
}

function resolveEncryption(raw: unknown): { enabled: boolean; keyring: Keyring | undefined } {
  if (raw === undefined) raw = {}
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw configError('encryption: must be an object')
  const enc = raw as Record<string, unknown>
  for (const k of Object.keys(enc)) {
    if (!['enabled', 'key', 'previousKeys'].includes(k)) {
      throw configError(`encryption.${k}: unknown key (expected enabled, key, previousKeys)`, 'GH_VAULT_UNKNOWN_OPTION')
    }
  }
  if (enc.enabled !== undefined && typeof enc.enabled !== 'boolean') throw configError('encryption.enabled: must be boolean')
  const enabled = enc.enabled !== false
  if (!enabled) return { enabled, keyring: undefined }
  if (enc.key === undefined || enc.key === null) {
    throw configError(
      'encryption.key is required when encryption.enabled is true (32 bytes: raw, hex or base64; e.g. `openssl rand -base64 32`)',
      'GH_VAULT_KEY_MISSING',
    )
  }
  const keys = [parseEncryptionKey(enc.key, 'encryption.key')]
  if (enc.previousKeys !== undefined) {
    if (!Array.isArray(enc.previousKeys)) throw configError('encryption.previousKeys: must be an array of keys')
    enc.previousKeys.forEach((k, i) => keys.push(parseEncryptionKey(k, `encryption.previousKeys[${i}]`)))
  }
  return { enabled, keyring: new Keyring(keys) }
}

const VISIBLE = /^[\x21-\x7e]{1,8192}$/

function resolveAccountHeaders(raw: unknown): Partial<Record<ProviderName, Readonly<Record<string, string>>>> {
  if (raw === undefined) return {}
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw configError('staticAccountHeaders: must be an object')
  const out: Partial<Record<ProviderName, Readonly<Record<string, string>>>> = {}
  for (const [name, headers] of Object.entries(raw as Record<string, unknown>)) {
    if (!isProviderName(name)) throw configError(`staticAccountHeaders: unknown provider ${JSON.stringify(name.slice(0, 40))}`, 'GH_VAULT_UNKNOWN_OPTION')
    if (headers === undefined) continue
    if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) throw configError(`staticAccountHeaders.${name}: must be an object of header names to values`)
    const allowed = PROVIDERS[name].accountHeaders
    const set: Record<string, string> = {}
    for (const [header, value] of Object.entries(headers as Record<string, unknown>)) {
      const lower = header.toLowerCase()
      if (!allowed.includes(lower)) throw configError(`staticAccountHeaders.${name}: ${JSON.stringify(header.slice(0, 40))} is not an account header of ${name} (${allowed.join(', ') || 'none'})`)
      if (value === undefined || value === '') continue
      if (typeof value !== 'string' || !VISIBLE.test(value)) throw configError(`staticAccountHeaders.${name}.${lower}: must be 1-8192 visible ASCII characters`)
      set[lower] = value
    }
    out[name] = Object.freeze(set)
  }
  return out
}

function resolveCluster(raw: unknown, keyring: Keyring | undefined): VaultClusterOptions | undefined {
  if (raw === undefined) return undefined
  const c = raw as Partial<VaultClusterOptions> | null
  const client = c?.client as Partial<VaultClusterOptions['client']> | undefined
  if (!client || typeof client.get !== 'function' || typeof client.set !== 'function' || typeof client.eval !== 'function') {
    throw configError('cluster: needs { client: an ioredis client }')
  }
  if (c!.prefix !== undefined && (typeof c!.prefix !== 'string' || c!.prefix.length > 200)) throw configError('cluster.prefix: must be a string of at most 200 characters')
  if (c!.leaseMs !== undefined && (!Number.isSafeInteger(c!.leaseMs) || c!.leaseMs < 1000)) throw configError('cluster.leaseMs: must be a whole number of ms, at least 1000')
  if (c!.records !== undefined && typeof c!.records !== 'boolean') throw configError('cluster.records: must be a boolean')
  if (c!.resyncMs !== undefined && (!Number.isSafeInteger(c!.resyncMs) || c!.resyncMs < 50)) throw configError('cluster.resyncMs: must be a whole number of ms, at least 50')
  if (c!.records && typeof client.duplicate !== 'function') throw configError('cluster.records: needs a client that can duplicate() its connection (an ioredis client)')
  // Refreshed tokens and records go to Redis encrypted under the vault's key, or not at all.
  if (!keyring) throw configError('cluster: needs encryption on (the shared tokens and records are encrypted under the vault key)')
  return c as VaultClusterOptions
}

function resolveStatic(raw: unknown): Partial<Record<ProviderName, string>> {
  if (raw === undefined) return {}
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw configError('staticCredentials: must be an object')
  const out: Partial<Record<ProviderName, string>> = {}
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (!isProviderName(name)) {
      throw configError(
        `staticCredentials: unknown provider ${JSON.stringify(name.slice(0, 40))} (expected ${PROVIDER_NAMES.join(', ')})`,
        'GH_VAULT_UNKNOWN_OPTION',
      )
    }
    if (value === undefined || value === '') continue
    if (typeof value !== 'string' || !VISIBLE.test(value)) {
      throw configError(`staticCredentials.${name}: must be 1-8192 visible ASCII characters (the value is not shown)`)
    }
    out[name] = value
  }
  return out
}

/** Validate vault options and resolve them into a frozen config. Throws GatehouseConfigError. */
export function resolveCredentialVaultConfig(options: CredentialVaultOptions): CredentialVaultConfig {
  const data = resolveData(options)
  const raw = options as unknown as Record<string, unknown>
  if (raw.onEvent !== undefined && typeof raw.onEvent !== 'function') throw configError('onEvent: must be a function')
  if (raw.logger !== undefined && !isLogger(raw.logger)) throw configError('logger: must have error, warn, info and debug methods')
  const { enabled, keyring } = resolveEncryption(raw.encryption)
  const config = {
    dir: data.dir,
    encryptionEnabled: enabled,
    keyring,
    allowInsecurePermissions: data.allowInsecurePermissions ?? false,
    createDir: data.createDir ?? true,
    watch: data.watch ?? true,
    rescanIntervalMs: ms(data.rescanInterval, '30s', 'rescanInterval'),
    reloadDebounceMs: ms(data.reloadDebounce, '100ms', 'reloadDebounce'),
    unhealthyCooldownMs: ms(data.unhealthyCooldown, '60s', 'unhealthyCooldown'),
    refreshTimeoutMs: ms(data.refreshTimeout, '30s', 'refreshTimeout'),
    refreshSkewMs: ms(data.refreshSkew, '60s', 'refreshSkew'),
    refreshBackoffMs: ms(data.refreshBackoff, '30s', 'refreshBackoff'),
    refreshBackoffMaxMs: ms(data.refreshBackoffMax, '30m', 'refreshBackoffMax'),
    maxFileBytes: data.maxFileBytes ?? 1024 * 1024,
    onEvent: raw.onEvent as SecurityEventHandler | undefined,
    logger: (raw.logger as Logger | undefined) ?? noopLogger,
  } as CredentialVaultConfig
  if (config.refreshTimeoutMs < 1) throw configError('refreshTimeout: must be at least 1ms')
  Object.defineProperty(config, 'cluster', { value: resolveCluster(raw.cluster, keyring), enumerable: false })
  // Secrets stay out of JSON.stringify and util.inspect of the config: non-enumerable.
  Object.defineProperty(config, 'staticCredentials', { value: Object.freeze(resolveStatic(raw.staticCredentials)), enumerable: false })
  Object.defineProperty(config, 'staticAccountHeaders', { value: Object.freeze(resolveAccountHeaders(raw.staticAccountHeaders)), enumerable: false })
  return Object.freeze(config)
}
