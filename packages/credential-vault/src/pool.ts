import type { ProviderName } from '@gatehouse/core'
import { PKG } from './errors'
import { canRefresh, isUnhealthy, tokenState, usableAgainAt } from './health'
import { upstreamHeadersFor, type CredentialRecord } from './record'
import type { OAuthRefresher } from './refresh'
import type { Entry, VaultState } from './state'
import type { CredentialLease } from './types'

const secretOf = (record: CredentialRecord): string => (record.type === 'oauth' ? record.oauth!.access_token : record.token!)

/**
 * The per-provider pool: round robin over the healthy credentials (vault ones by id, then the
 * static key), leases, rejections with proof (refresh, cool-down, or the last credential kept),
 * and when a cooling-down provider may serve again.
 */
export class CredentialPool {
  private readonly keptLast = new Map<ProviderName, number>()
  private readonly rr = new Map<ProviderName, number>()

  constructor(
    private readonly state: VaultState,
    private readonly refresher: Pick<OAuthRefresher, 'refresh'>,
  ) {}

  /**
   * A lease at once when a credential can be used as it is, a promise only when every usable one
   * must be refreshed first (one refresh per credential however many requests wait), undefined
   * when none can be used. An OAuth token close to expiry is refreshed in the background.
   */
  acquireNowOrLater(provider: ProviderName): CredentialLease | undefined | Promise<CredentialLease | undefined> {
    if (this.state.closed) return undefined
    const list = this.state.candidates(provider)
    if (list.length === 0) return undefined
    const start = this.rr.get(provider) ?? 0
    this.rr.set(provider, (start + 1) % 1_000_000_007)
    const now = Date.now()
    const skew = this.state.config.refreshSkewMs
    const waiting: Entry[] = []
    for (let i = 0; i < list.length; i++) {
      const entry = list[(start + i) % list.length]!
      if (now < entry.unhealthyUntil) continue
      const state = tokenState(entry, now, skew)
      if (state === 'expired') {
        // Start (or join) its refresh; serve another credential meanwhile if one is usable.
        if (entry.refresh.inFlight || (canRefresh(entry) && now >= entry.refresh.nextAttemptAt)) {
          void this.refresher.refresh(entry)
          waiting.push(entry)
        }
        continue
      }
      if (state === 'expiring' && canRefresh(entry) && now >= entry.refresh.nextAttemptAt) void this.refresher.refresh(entry)
      return this.lease(entry)
    }
    if (waiting.length === 0) return undefined
    return Promise.any(
      waiting.map((e) => this.refresher.refresh(e).then((ok) => (ok && this.isServable(e) ? e : Promise.reject(new Error('refresh failed'))))),
    ).then(
      (entry) => this.lease(entry),
      () => undefined,
    )
  }

  /** Reject credential `credentialId` on proof that it is bad (see `CredentialLease.reject`). */
  reject(credentialId: string, reason: string): void {
    const entry = this.state.find(credentialId)
    if (entry) this.rejectEntry(entry, reason)
  }

  /** Seconds until some credential of `provider` may be usable again (for Retry-After), if known. */
  retryAfterSeconds(provider: ProviderName): number | undefined {
    const now = Date.now()
    let soonest = Infinity
    for (const e of this.state.candidates(provider)) soonest = Math.min(soonest, usableAgainAt(e, now) ?? Infinity)
    return Number.isFinite(soonest) ? Math.max(1, Math.ceil((soonest - now) / 1000)) : undefined
  }

  /** For `status().providers`: credentials usable now, and rejections not applied to a last credential. */
  providerStatus(provider: ProviderName, now: number): { usable: number; kept_last_rejections: number } {
    const usable = this.state.candidates(provider).filter((e) => !isUnhealthy(e, now, this.state.config.refreshSkewMs)).length
    return { usable, kept_last_rejections: this.keptLast.get(provider) ?? 0 }
  }

  private isServable(entry: Entry): boolean {
    const now = Date.now()
    return this.state.isLive(entry) && !this.state.closed && now >= entry.unhealthyUntil && tokenState(entry, now, this.state.config.refreshSkewMs) !== 'expired'
  }

  private headersOf(entry: Entry): Readonly<Record<string, string>> {
    const r = entry.record
    if (entry.headers?.record !== r) {
      const account = entry.source === 'static' ? this.state.config.staticAccountHeaders[r.provider] : undefined
      entry.headers = { record: r, value: Object.freeze({ ...upstreamHeadersFor(r.provider, r.type, secretOf(r)), ...account }) }
    }
    return entry.headers.value
  }

  private lease(entry: Entry): CredentialLease {
    entry.lastUsedAt = Date.now()
    const r = entry.record
    let reported = false
    let rejected = false
    return Object.freeze({
      credentialId: entry.id,
      provider: r.provider,
      type: r.type,
      source: entry.source,
      headers: this.headersOf(entry),
      report: (status: number): void => {
        if (reported) return
        reported = true
        entry.lastStatus = status
      },
      reject: (reason: string): void => {
        if (rejected) return
        rejected = true
        this.rejectEntry(entry, reason)
      },
    })
  }

  /**
   * An OAuth token is refreshed first (once per cool-down); otherwise the credential cools down
   * for `unhealthyCooldown`, unless it is the last usable credential of its provider.
   */
  private rejectEntry(entry: Entry, reason: string): void {
    const now = Date.now()
    if (now < entry.unhealthyUntil) return
    const { config } = this.state
    if (canRefresh(entry) && !entry.stale && now - entry.refresh.lastSuccessAt > config.unhealthyCooldownMs) {
      entry.stale = true
      this.reportRejection(entry, reason, 'refresh', 'upstream rejected an OAuth access token; refreshing it before the next use')
      return
    }
    // Never the last usable credential: taking it out would answer every tenant with 503, which
    // is worse than the provider's own refusal; an operator must act, so it is loud instead.
    const provider = entry.record.provider
    const others = this.state.candidates(provider).some((e) => e !== entry && !isUnhealthy(e, now, config.refreshSkewMs) && this.isServable(e))
    if (!others) {
      this.keptLast.set(provider, (this.keptLast.get(provider) ?? 0) + 1)
      this.reportRejection(entry, reason, 'kept_last_credential', 'the provider rejected its last usable credential; it stays in service until another is added')
      return
    }
    entry.unhealthyUntil = now + config.unhealthyCooldownMs
    entry.unhealthyReason = `rejected:${reason}`
    this.reportRejection(entry, reason, 'cooldown', 'upstream rejected a credential; skipping it for the cool-down')
  }

  private reportRejection(entry: Entry, reason: string, action: 'refresh' | 'kept_last_credential' | 'cooldown', message: string): void {
    const { config } = this.state
    const provider = entry.record.provider
    const cooldown = action === 'cooldown' ? { cooldown_ms: config.unhealthyCooldownMs } : {}
    const meta = { credential_id: entry.id, provider, reason, ...cooldown }
    if (action === 'kept_last_credential') config.logger.error(`${PKG}: ${message}`, meta)
    else config.logger.warn(`${PKG}: ${message}`, meta)
    this.state.emit({
      event_type: 'credential_access',
      provider,
      result: 'rejected',
      details: { credential_id: entry.id, reason, action, ...cooldown },
    })
  }
}
