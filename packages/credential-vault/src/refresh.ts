import { isGatehouseError, type ProviderName } from '@gatehouse/core'
import { RefreshCoordinator, type SharedTokens } from './cluster'
import { CredentialVaultErrorCodes, PKG } from './errors'
import { canRefresh } from './health'
import { TokenRefreshError, requestTokenRefresh } from './oauth'
import type { CredentialRecord, OAuthTokens } from './record'
import type { Entry, VaultState } from './state'
import type { CredentialWriter } from './writer'

type TokenSource = 'refreshed' | 'shared'

/**
 * OAuth refresh: one call per credential however many requests wait on it (single-flight), across
 * the gateways of a cluster too when `cluster` is set (see cluster.ts). A failure backs off
 * exponentially and touches that credential only. Refreshed tokens are written back encrypted.
 */
export class OAuthRefresher {
  /** Cluster mode: OAuth refresh single-flight across the gateways sharing a Redis (and their shared tokens). */
  readonly coordinator: RefreshCoordinator | undefined

  constructor(
    private readonly state: VaultState,
    private readonly writer: Pick<CredentialWriter, 'persist'>,
  ) {
    const { cluster, keyring, refreshTimeoutMs } = state.config
    if (cluster && keyring) this.coordinator = new RefreshCoordinator(cluster, keyring, refreshTimeoutMs)
  }

  /** Refresh vault credential `credentialId` now (single-flight). Resolves true on success. */
  refreshCredential(credentialId: string): Promise<boolean> {
    const entry = this.state.entries.get(credentialId)
    if (!entry || !canRefresh(entry)) return Promise.resolve(false)
    return this.refresh(entry)
  }

  /** Start a refresh of `entry`, or join the one in flight. Resolves true on success. */
  refresh(entry: Entry): Promise<boolean> {
    if (entry.refresh.inFlight) return entry.refresh.inFlight
    const state = entry.refresh
    const run = this.run(entry).finally(() => {
      state.inFlight = undefined
    })
    state.inFlight = run
    return run
  }

  private async run(entry: Entry): Promise<boolean> {
    const started = Date.now()
    const oauth = entry.record.oauth!
    const provider = entry.record.provider
    try {
      const { tokens, source } = await this.fetchTokens(entry, oauth)
      return this.apply(entry, oauth, tokens, source, started)
    } catch (err) {
      this.recordFailure(entry, provider, err, started)
      return false
    }
  }

  /** New tokens from the token endpoint, or (cluster mode) from the gateway that refreshed them. */
  private async fetchTokens(entry: Entry, oauth: OAuthTokens): Promise<{ tokens: SharedTokens; source: TokenSource }> {
    const params = {
      tokenUrl: oauth.token_url!,
      refreshToken: oauth.refresh_token!,
      timeoutMs: this.state.config.refreshTimeoutMs,
      ...(oauth.client_id !== undefined ? { clientId: oauth.client_id } : {}),
      ...(oauth.scope !== undefined ? { scope: oauth.scope } : {}),
    }
    const local = async (from: SharedTokens): Promise<SharedTokens> => {
      const r = await requestTokenRefresh({ ...params, ...(from.refresh_token !== undefined ? { refreshToken: from.refresh_token } : {}) })
      return {
        access_token: r.access_token,
        refresh_token: r.refresh_token ?? from.refresh_token!,
        ...(r.expires_in !== undefined ? { expires_at: Date.now() + Math.round(r.expires_in * 1000) } : {}),
      }
    }
    const mine: SharedTokens = { access_token: oauth.access_token, refresh_token: oauth.refresh_token!, ...(oauth.expires_at !== undefined ? { expires_at: oauth.expires_at } : {}) }
    if (!this.coordinator) return { tokens: await local(mine), source: 'refreshed' }
    try {
      const out = await this.coordinator.run(entry.id, mine, local)
      return { tokens: out.tokens, source: out.refreshedHere ? 'refreshed' : 'shared' }
    } catch (err) {
      if (err instanceof TokenRefreshError) throw err
      // Redis out of reach: refresh here rather than not at all (the race is the lesser harm).
      this.state.config.logger.warn(`${PKG}: the cluster's Redis is unreachable; refreshing this OAuth token without coordination`, { credential_id: entry.id })
      return { tokens: await local(mine), source: 'refreshed' }
    }
  }

  /** Take the new tokens into memory and onto disk; false when the credential changed meanwhile. */
  private apply(entry: Entry, oauth: OAuthTokens, result: SharedTokens, source: TokenSource, started: number): boolean {
    const now = Date.now()
    // Revoked, or its tokens replaced (on disk or by update()) while this refresh ran: drop the result.
    if (this.state.entries.get(entry.id) !== entry || this.state.closed) return false
    // The refreshing gateway's record reached this one through the shared records first: already in use.
    if (entry.record.oauth?.access_token === result.access_token) return true
    if (entry.record.oauth?.refresh_token !== oauth.refresh_token) return false
    const next: CredentialRecord = {
      ...entry.record,
      oauth: {
        ...oauth,
        access_token: result.access_token,
        refresh_token: result.refresh_token ?? oauth.refresh_token!,
        ...(result.expires_at !== undefined ? { expires_at: result.expires_at } : {}),
      },
      updated_at: new Date(now).toISOString(),
    }
    if (result.expires_at === undefined) delete next.oauth!.expires_at
    this.state.setRecord(entry, next)
    entry.stale = false
    Object.assign(entry.refresh, { failures: 0, nextAttemptAt: 0, lastReason: undefined, lastSuccessAt: now })
    this.state.emit({
      event_type: 'token_refresh',
      provider: next.provider,
      result: 'success',
      details: {
        credential_id: entry.id,
        duration_ms: now - started,
        expires_at: next.oauth!.expires_at !== undefined ? new Date(next.oauth!.expires_at).toISOString() : null,
        refresh_token_rotated: result.refresh_token !== undefined && result.refresh_token !== oauth.refresh_token,
        // shared: another gateway of the cluster refreshed it, and this one took its tokens.
        source,
      },
    })
    this.save(entry, next)
    return true
  }

  private save(entry: Entry, next: CredentialRecord): void {
    this.writer.persist(next).catch((err: unknown) => {
      this.state.config.logger.error(`${PKG}: a refreshed token could not be saved; it is used from memory until restart`, {
        credential_id: entry.id,
        code: isGatehouseError(err) ? err.code : undefined,
      })
      this.state.emit({
        event_type: 'token_refresh',
        provider: next.provider,
        result: 'persist_failed',
        details: { credential_id: entry.id, code: isGatehouseError(err) ? err.code : CredentialVaultErrorCodes.GH_VAULT_WRITE_FAILED },
      })
    })
  }

  /** Back off exponentially, from refreshBackoff up to refreshBackoffMax. */
  private recordFailure(entry: Entry, provider: ProviderName, err: unknown, started: number): void {
    const { config } = this.state
    const now = Date.now()
    const reason = err instanceof TokenRefreshError ? err.reason : 'error'
    const code = err instanceof TokenRefreshError ? err.code : CredentialVaultErrorCodes.GH_VAULT_REFRESH_FAILED
    const state = entry.refresh
    state.failures += 1
    const wait = Math.min(config.refreshBackoffMaxMs, config.refreshBackoffMs * 2 ** Math.min(state.failures - 1, 30))
    state.nextAttemptAt = now + wait
    state.lastReason = reason
    config.logger.error(`${PKG}: OAuth refresh failed; next attempt after the backoff`, {
      credential_id: entry.id,
      provider,
      reason,
      failures: state.failures,
      retry_in_ms: wait,
    })
    this.state.emit({
      event_type: 'token_refresh',
      provider,
      result: 'failure',
      details: { credential_id: entry.id, code, reason, duration_ms: now - started, failures: state.failures, retry_in_ms: wait },
    })
  }
}
