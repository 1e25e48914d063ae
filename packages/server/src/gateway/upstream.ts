import type { Response } from 'express'
import { gatehouseLocals, type Logger, type ProviderName, type SecurityEventHandler } from '@gatehouse/core'
import { createCredentialVault, upstreamCredentialOf, type CredentialVault } from '@gatehouse/credential-vault'
import { deviceFingerprint } from '@gatehouse/device-fingerprint'
import { gatehouseProxy } from '@gatehouse/proxy'
import type { GatehouseConfig } from '../config/types'
import { fingerprintAdapter } from '../config/adapters'
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
    // Cluster mode: one gateway refreshes an OAuth token, the others use its tokens (encrypted in Redis).
    ...(redis && config.auth.encryption.enabled ? { cluster: { client: redis, prefix } } : {}),
    onEvent: emit,
    logger,
  })
  if (redis && !config.auth.encryption.enabled) logger.warn('cluster mode with auth.encryption off: OAuth refreshes are not coordinated between gateways (the shared tokens would be plaintext in Redis); turn encryption on')
  const fingerprintOptions = fingerprintAdapter.options(config)
  const fingerprint = fingerprintOptions ? deviceFingerprint({ ...fingerprintOptions, dir: authDir, onEvent: emit, logger }) : undefined
  const proxy = gatehouseProxy({
    providers: Object.fromEntries(
      providers.map((name) => {
        const pc = config.providers[name]!
        return [name, { baseUrl: pc.base_url, ...(pc.endpoints ? { endpoints: pc.endpoints } : {}) }]
      }),
    ),
    credential: (_req, res) => upstreamCredentialOf(res),
    body: (_req, res) => gatehouseLocals(res as Response).requestGuard?.rawBody,
    ...(fingerprint ? { extraHeaders: { [fingerprint.header.toLowerCase()]: fingerprint.fingerprint } } : {}),
    timeouts: { connect: config.server.timeouts.connect, firstByte: config.server.timeouts.first_byte, idle: config.server.timeouts.idle },
    knownSecrets,
    batching: true,
    onEvent: emit,
    logger,
  })
  return { vault, fingerprint, proxy }
}
