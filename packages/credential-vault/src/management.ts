import { isProviderName, maskSecret, maskSecrets, type ProviderName } from '@gatehouse/core'
import { PKG, notFound } from './errors'
import { isUnhealthy } from './health'
import type { PermissionGuard } from './permissions'
import type { CredentialPool } from './pool'
import {
  ID_PATTERN,
  applyCredentialPatch,
  fileNameOf,
  newCredentialId,
  validateCredentialInput,
  type CredentialInput,
  type CredentialPatch,
  type CredentialRecord,
} from './record'
import { resetHealth, type Entry, type VaultState } from './state'
import type { CredentialSummary, EventContext, VaultStatus } from './types'
import type { CredentialWriter } from './writer'

/** What the management API calls: list, add, update, revoke, delete and status. Secrets are masked in every answer. */
export class CredentialManagement {
  constructor(
    private readonly state: VaultState,
    private readonly writer: Pick<CredentialWriter, 'persist' | 'unlink'>,
    private readonly pool: Pick<CredentialPool, 'providerStatus'>,
    private readonly guard: Pick<PermissionGuard, 'readable'>,
  ) {}

  list(): CredentialSummary[] {
    const now = Date.now()
    const out: CredentialSummary[] = []
    for (const entry of [...this.state.sortedEntries(), ...this.state.statics]) out.push(this.summarize(entry, now))
    for (const [file, err] of [...this.state.fileErrors].sort(([a], [b]) => a.localeCompare(b))) {
      out.push({ id: err.id, provider: null, type: null, source: 'vault', status: 'disabled', file, error: { code: err.code, message: err.message } })
    }
    return out
  }

  get(id: string): CredentialSummary | undefined {
    if (typeof id !== 'string') return undefined
    const entry = this.state.find(id)
    if (entry) return this.summarize(entry, Date.now())
    return this.list().find((s) => s.id === id)
  }

  async add(input: CredentialInput | unknown, context: EventContext): Promise<{ id: string }> {
    const body = validateCredentialInput(input)
    const now = new Date().toISOString()
    const id = newCredentialId()
    const record: CredentialRecord = { v: 1, id, ...body, created_at: now, updated_at: now }
    await this.writer.persist(record)
    this.state.config.logger.info(`${PKG}: credential added`, { credential_id: id, provider: record.provider, type: record.type })
    this.state.emit({
      ...context,
      event_type: 'config_change',
      provider: record.provider,
      result: 'credential_added',
      details: { action: 'credential_added', credential_id: id, type: record.type, source: 'api' },
    })
    return { id }
  }

  async update(id: string, patch: CredentialPatch | unknown, context: EventContext): Promise<CredentialSummary> {
    const entry = typeof id === 'string' && ID_PATTERN.test(id) ? this.state.entries.get(id) : undefined
    if (!entry) throw notFound('no credential with that id')
    const next = applyCredentialPatch(entry.record, patch)
    next.updated_at = new Date().toISOString()
    await this.writer.persist(next)
    resetHealth(entry)
    this.state.emit({
      ...context,
      event_type: 'config_change',
      provider: next.provider,
      result: 'credential_updated',
      details: { action: 'credential_updated', credential_id: id, fields: Object.keys(patch as object).sort() },
    })
    return this.summarize(entry, Date.now())
  }

  async revoke(provider: string, id: string | undefined, context: EventContext): Promise<{ revoked: string[] }> {
    if (!isProviderName(provider)) throw notFound('no credentials for that provider')
    const ids = this.revocable(provider, id)
    const revoked: string[] = []
    for (const one of ids) {
      await this.writer.unlink(one)
      revoked.push(one)
      this.emitRevoked(one, context, provider)
    }
    this.state.config.logger.info(`${PKG}: credentials revoked`, { provider, count: revoked.length })
    return { revoked }
  }

  async delete(id: string, context: EventContext): Promise<{ revoked: string[] }> {
    if (typeof id !== 'string' || !ID_PATTERN.test(id)) throw notFound('no credential with that id')
    const provider = this.state.entries.get(id)?.record.provider
    if (provider) return this.revoke(provider, id, context)
    if (!this.state.fileErrors.has(fileNameOf(id))) throw notFound('no credential with that id')
    await this.writer.unlink(id)
    this.emitRevoked(id, context)
    return { revoked: [id] }
  }

  status(): VaultStatus {
    const { config, fileErrors } = this.state
    const now = Date.now()
    const all = [...this.state.entries.values(), ...this.state.statics]
    const unhealthy = all.filter((e) => isUnhealthy(e, now, config.refreshSkewMs)).length
    const keyring = config.keyring
    return {
      dir: config.dir,
      readable: this.guard.readable() && !this.state.closed,
      encryption: keyring ? { enabled: true, current_key_id: keyring.current.kid, key_ids: keyring.keyIds } : { enabled: false, key_ids: [] },
      credentials: { total: all.length + fileErrors.size, active: all.length - unhealthy, unhealthy, disabled: fileErrors.size },
      providers: Object.fromEntries([...new Set(all.map((e) => e.record.provider))].map((p) => [p, this.pool.providerStatus(p, now)])),
      errors: [...fileErrors].map(([file, e]) => ({ file, id: e.id, code: e.code, message: e.message })),
    }
  }

  /** The ids a revoke takes: the one id (a disabled file too) or every vault credential of the provider. */
  private revocable(provider: ProviderName, id: string | undefined): string[] {
    if (id === undefined) {
      const ids = this.state
        .sortedEntries()
        .filter((e) => e.record.provider === provider)
        .map((e) => e.id)
      if (ids.length === 0) throw notFound('no credentials for that provider')
      return ids
    }
    if (typeof id !== 'string' || !ID_PATTERN.test(id)) throw notFound('no credential with that id')
    const entry = this.state.entries.get(id)
    const disabled = this.state.fileErrors.get(fileNameOf(id))
    if (entry ? entry.record.provider !== provider : !disabled) throw notFound('no credential with that id for that provider')
    return [id]
  }

  private emitRevoked(id: string, context: EventContext, provider?: ProviderName): void {
    this.state.emit({
      ...context,
      event_type: 'config_change',
      ...(provider !== undefined ? { provider } : {}),
      result: 'credential_revoked',
      details: { action: 'credential_revoked', credential_id: id },
    })
  }

  private summarize(entry: Entry, now: number): CredentialSummary {
    const r = entry.record
    const unhealthy = isUnhealthy(entry, now, this.state.config.refreshSkewMs)
    const s: CredentialSummary = {
      id: entry.id,
      provider: r.provider,
      type: r.type,
      source: entry.source,
      status: unhealthy ? 'unhealthy' : 'active',
      created_at: r.created_at,
      updated_at: r.updated_at,
    }
    if (r.label !== undefined) s.label = r.label
    if (entry.source === 'vault') {
      s.encrypted = entry.encrypted
      if (entry.kid) s.key_id = entry.kid
      // A record kept in Redis (cluster mode) has no file.
      if (entry.file !== undefined) s.file = entry.file
    }
    if (r.type === 'api_key') s.token = maskSecret(r.token!)
    else {
      const o = r.oauth!
      s.oauth = { access_token: maskSecret(o.access_token) }
      if (o.refresh_token !== undefined) s.oauth.refresh_token = maskSecret(o.refresh_token)
      if (o.expires_at !== undefined) s.oauth.expires_at = new Date(o.expires_at).toISOString()
      if (o.token_url !== undefined) s.oauth.token_url = maskSecrets(o.token_url)
    }
    if (unhealthy) {
      const until = Math.max(entry.unhealthyUntil, entry.refresh.nextAttemptAt)
      if (until > now) s.unhealthy_until = new Date(until).toISOString()
      s.unhealthy_reason = entry.unhealthyUntil > now ? entry.unhealthyReason ?? 'rejected' : `refresh_failed:${entry.refresh.lastReason ?? 'unknown'}`
    }
    if (entry.lastUsedAt !== undefined) s.last_used_at = new Date(entry.lastUsedAt).toISOString()
    return s
  }
}
