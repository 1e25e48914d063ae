import { emitSecurityEvent, type Logger, type SecurityEventHandler } from '@gatehouse/core'
import { periodEnd, periodOf, type QuotaPeriod } from './period'
import { loadQuotaFile, quotaFileSigner, writeQuotaFile, type QuotaEntry, type QuotaFileSigner } from './quota-file'
import type { QuotaRef, QuotaState } from './store'

export interface QuotaCountersConfig {
  quotaFile: string | undefined
  quotaFileKey: Uint8Array | undefined
  quotaFlushMs: number
  logger: Logger
  onEvent: SecurityEventHandler | undefined
  clock: () => number
}

const SEP = '\u0000'
const idOf = (quota: { namespace: string; key: string }): string => `${quota.namespace}${SEP}${quota.key}`

/**
 * The memory store's monthly quota counters and their file. Counters are never evicted (they are
 * keyed by provider or authenticated key id, not by anything a client picks). With a key, the file
 * carries an HMAC: one that does not match is refused fail-closed (every counter of the month
 * counts as spent), so an edit outside the gateway can never hand a tenant its quota back.
 */
export class QuotaCounters {
  private readonly entries: Map<string, QuotaEntry>
  /** Counters of this period that are not in `entries` count as spent (after a refused file). */
  private exhausted: QuotaPeriod | undefined
  private readonly file: string | undefined
  private readonly sign: QuotaFileSigner | undefined
  private readonly flushMs: number
  private readonly logger: Logger
  private readonly clock: () => number
  private flushTimer: NodeJS.Timeout | undefined
  private writing: Promise<void> = Promise.resolve()
  private dirty = false
  errors = 0

  constructor(config: QuotaCountersConfig) {
    this.file = config.quotaFile
    this.sign = config.quotaFileKey ? quotaFileSigner(config.quotaFileKey) : undefined
    this.flushMs = config.quotaFlushMs
    this.logger = config.logger
    this.clock = config.clock
    if (!this.file) {
      this.entries = new Map()
      return
    }
    const loaded = loadQuotaFile(this.file, (msg) => this.logger.warn(`@gatehouse/rate-limit: ${msg}`), this.sign)
    this.entries = loaded.quotas
    this.exhausted = loaded.exhausted
    if (loaded.status === 'tampered') this.refuseTampered(this.file, loaded.movedTo, config.onEvent)
    else if (loaded.status === 'unsigned' && this.sign) {
      this.logger.warn('@gatehouse/rate-limit: the quota file had no integrity check; accepted once and written again with one', {
        file: this.file,
      })
      this.rewrite()
    }
  }

  /** Write the file now rather than after quotaFlushMs: it must not stay unsigned or refused. */
  private rewrite(): void {
    this.dirty = true
    void this.flush()
  }

  /** Fail closed: this month counts as spent for every counter, until an operator resets one. */
  private refuseTampered(file: string, movedTo: string | undefined, onEvent: SecurityEventHandler | undefined): void {
    this.exhausted = periodOf(this.clock())
    this.logger.error(
      '@gatehouse/rate-limit: the quota file failed its integrity check (edited outside the gateway) and was not used; every monthly quota counts as spent until the month ends or an operator resets it',
      { code: 'GH_RL_QUOTA_FILE_TAMPERED', file, ...(movedTo ? { moved_to: movedTo } : {}) },
    )
    emitSecurityEvent(onEvent, {
      event_type: 'security_violation',
      result: 'quota_file_refused',
      details: { code: 'GH_RL_QUOTA_FILE_TAMPERED', file, ...(movedTo ? { moved_to: movedTo } : {}) },
    })
    this.rewrite()
  }

  /** What a counter has used in `period` (nothing is created). */
  used(quota: QuotaRef, period: QuotaPeriod): number {
    const entry = this.entries.get(idOf(quota))
    if (entry && entry.period === period) return entry.used
    return period === this.exhausted ? quota.limit : 0
  }

  /** The counter of `period`, created when missing (spent in a refused file's month). */
  entry(quota: QuotaRef, period: QuotaPeriod): QuotaEntry {
    const id = idOf(quota)
    let entry = this.entries.get(id)
    if (!entry || entry.period !== period) {
      entry = { period, used: period === this.exhausted ? quota.limit : 0 }
      this.entries.set(id, entry)
    }
    return entry
  }

  /** Add `amount` to a counter (its caller checked the limit). */
  add(entry: QuotaEntry, amount: number): void {
    if (amount === 0) return
    entry.used += amount
    this.changed()
  }

  reserve(quota: QuotaRef, amount: number): QuotaState {
    const now = this.clock()
    const period = periodOf(now)
    const entry = this.entry(quota, period)
    // A request that reserves nothing (GET /v1/models) is never refused by a quota.
    const allowed = amount === 0 || quota.limit - entry.used >= amount
    if (allowed) this.add(entry, amount)
    return { allowed, used: entry.used, period, msUntilReset: periodEnd(period) - now }
  }

  settle(quota: QuotaRef, period: QuotaPeriod, delta: number): QuotaState {
    const entry = this.entries.get(idOf(quota))
    if (!entry || entry.period !== period) {
      // The month the tokens were reserved in is over; its counter is gone.
      return { allowed: false, used: entry?.used ?? 0, period: entry?.period ?? period, msUntilReset: 0 }
    }
    if (delta !== 0) {
      entry.used = Math.max(0, entry.used + delta)
      this.changed()
    }
    return { allowed: true, used: entry.used, period, msUntilReset: 0 }
  }

  get(quota: QuotaRef): QuotaState {
    const now = this.clock()
    const period = periodOf(now)
    return { allowed: true, used: this.used(quota, period), period, msUntilReset: periodEnd(period) - now }
  }

  /** An operator's reset: the counter starts from zero (also in a month a refused file spent). */
  reset(namespace: string, key: string): void {
    const id = idOf({ namespace, key })
    const period = periodOf(this.clock())
    if (period === this.exhausted) this.entries.set(id, { period, used: 0 })
    else if (!this.entries.delete(id)) return
    this.changed()
  }

  private changed(): void {
    if (!this.file) return
    this.dirty = true
    if (this.flushTimer) return
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined
      void this.flush()
    }, this.flushMs)
    this.flushTimer.unref()
  }

  /** Write the counters now (one write at a time; a write that fails is logged and retried on the next change). */
  flush(): Promise<void> {
    const file = this.file
    if (!file) return Promise.resolve()
    this.writing = this.writing.then(async () => {
      if (!this.dirty) return
      this.dirty = false
      const current = periodOf(this.clock())
      for (const [id, entry] of this.entries) if (entry.period < current) this.entries.delete(id)
      if (this.exhausted !== undefined && this.exhausted < current) this.exhausted = undefined
      try {
        await writeQuotaFile(file, this.entries, this.exhausted, this.sign)
      } catch (err) {
        this.errors++
        this.dirty = true
        this.logger.error('@gatehouse/rate-limit: could not write the quota file', {
          code: (err as NodeJS.ErrnoException).code ?? 'unknown',
        })
      }
    })
    return this.writing
  }

  async shutdown(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    await this.flush()
  }
}
