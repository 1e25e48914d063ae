import type { RequestHandler } from 'express'
import { clientIp, emitSecurityEvent, gatehouseLocals, sendProviderError, type ProviderName, type SecurityEventHandler } from '@gatehouse/core'
import type { CredentialVault } from '@gatehouse/credential-vault'
import { PROVIDER_ENV } from '../config/load'
import type { GatehouseConfig } from '../config/types'

/**
 * Providers served without any credential: no `providers.<name>.api_key` and nothing for them in
 * the vault. Such a provider is not ready, is warned about at start and by `gatehouse doctor`,
 * and its requests get a non-retryable 403 naming the setting (a 503 would read as "overloaded"
 * and every SDK would retry it).
 */
export function providersWithoutCredential(config: GatehouseConfig, vault: CredentialVault, providers: readonly ProviderName[]): ProviderName[] {
  const withCredential = (p: ProviderName): boolean =>
    Boolean(config.providers[p]?.api_key) || vault.list().some((c) => c.provider === p && c.status !== 'disabled')
  return providers.filter((p) => !withCredential(p))
}

/** What to set, by name (never a value). */
export const credentialHint = (p: ProviderName): string =>
  `set providers.${p}.api_key (or the ${PROVIDER_ENV[p]} environment variable), or add one with POST /v0/management/auths`

/** After routing: a request for a provider with no credential at all is refused before any limit is spent. */
export function unconfiguredProviderGuard(config: GatehouseConfig, vault: CredentialVault, onEvent: SecurityEventHandler): RequestHandler {
  return function unconfiguredProviderMiddleware(req, res, next) {
    const locals = gatehouseLocals(res)
    const provider = locals.provider as ProviderName | undefined
    if (provider === undefined || providersWithoutCredential(config, vault, [provider]).length === 0) return next()
    emitSecurityEvent(onEvent, {
      event_type: 'credential_access',
      provider,
      ip: clientIp(req),
      ...(locals.requestId !== undefined ? { request_id: locals.requestId } : {}),
      ...(locals.clientKeyId !== undefined ? { user_id: locals.clientKeyId } : {}),
      result: 'not_configured',
      details: { setting: `providers.${provider}.api_key` },
    })
    sendProviderError(res, provider, 403, {
      message: `Provider "${provider}" has no credential configured on this gateway: ${credentialHint(provider)}`,
    })
  }
}
