import type { Response } from 'express'
import { gatehouseLocals, parseDuration, type Logger, type ProviderName, type SecurityEventHandler } from '@gatehouse/core'
import { createCredentialVault, upstreamCredentialOf, type CredentialVault } from '@gatehouse/credential-vault'
import { deviceFingerprint } from '@gatehouse/device-fingerprint'
import { gatehouseProxy, memoryObjectOwners, redisObjectOwners } from '@gatehouse/proxy'
import type { GatehouseConfig } from '../config/types'
import { fingerprintAdapter, proxyAdapter } from '../config/adapters'
import type { SharedState } from './state'

export interface UpstreamContext {
  config: GatehouseConfig
  state: SharedState
  authDir: string
  encryptionKey: string | undefined
  providers: readonly ProviderName[]
  knownSecrets: string[]
  emit: SecurityEventHandler
  logger: Logger
}

export interface Upstream {
  vault: CredentialVault
  fingerprint: ReturnType<typeof deviceFingerprint> | undefined
  proxy: ReturnType<typeof gatehouseProxy>
}

/** The provider credentials (vault), the device fingerprint and the proxy to each configured provider. */
export function createUpstream({ config, state, authDir, encryptionKey, providers, knownSecrets, emit, logger }: UpstreamContext): Upstream {
  const { redis, prefix } = state
  const vault = createCredentialVault({
    dir: authDir,
    encryption: {
      enabled: config.auth.encryption.enabled,
      ...(encryptionKey ? { key: encryptionKey } : {}),
      ...(config.auth.encryption.previous_keys?.length ? { previousKeys: config.auth.encryption.previous_keys } : {}),
    },
    staticCredentials: Object.fromEntries(providers.map((p) => [p, config.providers[p]?.api_key])),
    // The account billed and read comes from the config, never from a client (empty means unset).
    staticAccountHeaders: {
      openai: { 'openai-organization': config.providers.openai?.organization ?? '', 'openai-project': config.providers.openai?.project ?? '' },
      gemini: { 'x-goog-user-project': config.providers.gemini?.user_project ?? '' },
    },
    // Cluster mode: the credential records are kept in Redis (encrypted, as the files would be) and
    // one gateway refreshes an OAuth token while the others use its tokens. The config check refuses
    // store.type redis with encryption off, so nothing of the vault reaches Redis in plaintext.
    ...(redis && config.auth.encryption.enabled ? { cluster: { client: redis, prefix, records: true, ...refreshLease(config) } } : {}),
    onEvent: emit,
    logger,
  })
  const fingerprintOptions = fingerprintAdapter.options(config)
  const fingerprint = fingerprintOptions ? deviceFingerprint({ ...fingerprintOptions, dir: authDir, onEvent: emit, logger }) : undefined
  const proxy = gatehouseProxy({
    providers: Object.fromEntries(
      providers.map((name) => {
        const pc = config.providers[name]!
        return [
          name,
          {
            baseUrl: pc.base_url,
            ...(pc.endpoints ? { endpoints: pc.endpoints } : {}),
            relayRateLimitHeaders: pc.relay_rate_limit_headers ?? false,
            ...(pc.shared_objects?.length ? { sharedObjects: pc.shared_objects } : {}),
          },
        ]
      }),
    ),
    credential: (_req, res) => upstreamCredentialOf(res),
    body: (_req, res) => gatehouseLocals(res as Response).requestGuard?.rawBody,
    ...(fingerprint ? { extraHeaders: { [fingerprint.header.toLowerCase()]: fingerprint.fingerprint } } : {}),
    ...proxyAdapter.options(config),
    knownSecrets,
    // Who made each stored response: shared by the cluster's gateways, or this gateway's own.
    objectOwners: redis
      ? redisObjectOwners(redis, prefix, (err) => logger.error('the owners of stored responses cannot be written to Redis', { error: String(err) }))
      : memoryObjectOwners(),
    batching: true,
    onEvent: emit,
    logger,
  })
  return { vault, fingerprint, proxy }
}

/** auth.oauth.refresh_lease as the vault's leaseMs (unset: the vault's default, the refresh timeout + 5 s). */
function refreshLease(config: GatehouseConfig): { leaseMs?: number } {
  const lease = config.auth.oauth?.refresh_lease
  return lease === undefined ? {} : { leaseMs: parseDuration(lease, 'auth.oauth.refresh_lease') }
}
