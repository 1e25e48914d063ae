import { randomBytes } from 'node:crypto'
import type { Response } from 'express'
import { gatehouseLocals, KEY_LIMIT_NAMES, type KeyLimits } from '@gatehouse/core'
import { periodEnd, periodStart, type QuotaPeriod } from './period'
import { appendDraft8, draft8PolicyItem, setRateLimitHeaders, type LimitKind, type PartitionKeys, type RefusalInfo } from './refusal'
import type { BucketRef, QuotaRef, RateLimitStore, ReserveOp, ReserveResult, SlotRef } from './store'

/** One limit that applies to a request: the key's overall figure or its figure for this provider. */
export interface Applied {
  limit: keyof KeyLimits
  value: number
  /** `*` for the key's overall limit, else the provider. */
  scope: string
}

/** What was taken, to give back on a refusal later in the list, or settle when the response ends. */
export type Held =
  | { kind: 'bucket'; ref: BucketRef; amount: number; tokens: boolean }
  | { kind: 'quota'; ref: QuotaRef; amount: number; period: QuotaPeriod }
  | { kind: 'slot'; ref: SlotRef; id: string }

/** One store operation of a request's plan, and what it holds once it is granted. */
export interface Planned {
  a: Applied
  op: ReserveOp
  held: Held
}

type OpResult = ReserveResult['results'][number]

/** What one limit answered: what it holds, or why it refused. */
export interface Outcome {
  a: Applied
  held?: Held
  refused?: { retryAfter: number; remaining: number; windowSeconds: number }
  tokens?: number
  msUntilFull?: number
}

const KIND: Record<keyof KeyLimits, LimitKind> = {
  requests_per_minute: 'requests',
  tokens_per_minute: 'tokens',
  monthly_tokens: 'quota',
  concurrency: 'concurrency',
}

const WHAT: Record<keyof KeyLimits, string> = {
  requests_per_minute: 'requests per minute',
  tokens_per_minute: 'tokens per minute',
  monthly_tokens: 'tokens per month',
  concurrency: 'concurrent requests',
}

/**
 * Slot ids for one limiter: unique per limiter (a random prefix) and per request (a counter),
 * without a UUID each time.
 */
export function slotIds(): () => string {
  const prefix = `${randomBytes(6).toString('hex')}-`
  let seq = 0
  return () => `${prefix}${++seq}`
}

/** OpenAI's reset format: `1s`, `6m0s`, `1h2m3s`. */
function openaiDuration(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds))
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const r = s % 60
  return h > 0 ? `${h}h${m}m${r}s` : m > 0 ? `${m}m${r}s` : `${r}s`
}

/** The key's limits for this request: its own (or the defaults), then its own for the provider. */
export function appliedLimits(res: Response, defaults: KeyLimits): Applied[] {
  const locals = gatehouseLocals(res)
  const own = locals.clientKeyLimits
  const out: Applied[] = []
  for (const limit of KEY_LIMIT_NAMES) {
    const value = own?.[limit] ?? defaults[limit]
    if (value !== undefined) out.push({ limit, value, scope: '*' })
  }
  const provider = locals.provider
  const perProvider = provider !== undefined ? own?.providers?.[provider] : undefined
  if (perProvider && provider !== undefined) {
    for (const limit of KEY_LIMIT_NAMES) {
      const value = perProvider[limit]
      if (value !== undefined) out.push({ limit, value, scope: provider })
    }
  }
  return out
}

/** One store operation per limit (a limit that would take nothing is left out). */
export function planOf(limits: Applied[], name: string, keyId: string, amount: number, leaseMs: number, nextSlotId: () => string): Planned[] {
  const plan: Planned[] = []
  for (const a of limits) {
    const namespace = `key-${a.limit}:${name}:${a.scope}`
    if (a.limit === 'requests_per_minute' || a.limit === 'tokens_per_minute') {
      const tokens = a.limit === 'tokens_per_minute'
      const want = tokens ? Math.min(amount, a.value) : 1
      if (want === 0) continue
      const ref: BucketRef = { namespace, key: keyId, capacity: a.value, refillPerSecond: a.value / 60 }
      plan.push({ a, op: { kind: 'bucket', ref, amount: want }, held: { kind: 'bucket', ref, amount: want, tokens } })
    } else if (a.limit === 'monthly_tokens') {
      if (amount === 0) continue
      const ref: QuotaRef = { namespace, key: keyId, limit: a.value }
      plan.push({ a, op: { kind: 'quota', ref, amount }, held: { kind: 'quota', ref, amount, period: 0 } })
    } else {
      const ref: SlotRef = { namespace, key: keyId, limit: a.value, leaseMs }
      const id = nextSlotId()
      plan.push({ a, op: { kind: 'slot', ref, id }, held: { kind: 'slot', ref, id } })
    }
  }
  return plan
}

export function outcomeOf(p: Planned, r: OpResult): Outcome {
  if (p.op.kind === 'bucket') {
    const st = r.bucket!
    return r.allowed
      ? { a: p.a, held: p.held, tokens: st.tokens, msUntilFull: st.msUntilFull }
      : { a: p.a, refused: { retryAfter: st.msUntilAvailable / 1000, remaining: st.tokens, windowSeconds: 60 } }
  }
  if (p.op.kind === 'quota') {
    const st = r.quota!
    if (p.held.kind === 'quota') p.held.period = st.period
    return r.allowed
      ? { a: p.a, held: p.held }
      : { a: p.a, refused: { retryAfter: st.msUntilReset / 1000, remaining: Math.max(0, p.a.value - st.used), windowSeconds: (periodEnd(st.period) - periodStart(st.period)) / 1000 } }
  }
  return r.allowed ? { a: p.a, held: p.held } : { a: p.a, refused: { retryAfter: 1, remaining: 0, windowSeconds: 1 } }
}

/** One planned operation on a store that cannot take a whole plan at once. */
export const takeOne = (store: RateLimitStore, p: Planned): Promise<OpResult> =>
  p.op.kind === 'bucket'
    ? store.take(p.op.ref, p.op.amount).then((bucket) => ({ allowed: bucket.allowed, bucket }))
    : p.op.kind === 'quota'
      ? store.quotaReserve(p.op.ref, p.op.amount).then((quota) => ({ allowed: quota.allowed, quota }))
      : store.slotAcquire(p.op.ref, p.op.id).then((slot) => ({ allowed: slot.allowed, slot }))

/** Give back what was taken (a refusal later in the list, a store failure). */
export function giveBack(store: RateLimitStore, held: Held[], onError: () => void): void {
  for (const h of held) {
    const p =
      h.kind === 'bucket'
        ? store.adjust(h.ref, -h.amount)
        : h.kind === 'quota'
          ? store.quotaSettle(h.ref, h.period, -h.amount)
          : store.slotRelease(h.ref, h.id)
    p.catch(onError)
  }
}

/** When the response ends: release the slots, and settle tokens on what the request was charged. */
export function settleHeld(store: RateLimitStore, held: Held[], charge: number, onError: () => void): void {
  for (const h of held) {
    const p =
      h.kind === 'slot'
        ? store.slotRelease(h.ref, h.id)
        : h.kind === 'bucket'
          ? h.tokens && charge !== h.amount
            ? store.adjust(h.ref, charge - h.amount)
            : undefined
          : charge !== h.amount
            ? store.quotaSettle(h.ref, h.period, charge - h.amount)
            : undefined
    p?.catch(onError)
  }
}

/**
 * The headers of an admitted request: the key's overall per-minute buckets as draft-8 fields (one
 * `RateLimit` and one `RateLimit-Policy` write for all of them), and OpenAI's own on OpenAI routes.
 */
export function setAdmittedHeaders(res: Response, outcomes: Outcome[], keyId: string, isOpenAI: boolean, partitionKeys: PartitionKeys): void {
  if (res.headersSent) return
  let fields = ''
  let policies = ''
  let pk: string | undefined
  for (const o of outcomes) {
    if (o.a.scope !== '*' || o.tokens === undefined) continue
    const tokens = o.a.limit === 'tokens_per_minute'
    const name = tokens ? 'key-tpm' : 'key-rpm'
    const remaining = Math.max(0, Math.floor(o.tokens))
    const reset = Math.max(0, Math.ceil((o.msUntilFull ?? 0) / 1000))
    const sep = fields === '' ? '' : ', '
    fields += `${sep}"${name}"; r=${remaining}; t=${reset}`
    pk ??= partitionKeys.of(keyId)
    policies += `${sep}${draft8PolicyItem(name, o.a.value, 60, pk)}`
    if (isOpenAI) {
      const which = tokens ? 'tokens' : 'requests'
      res.setHeader(`x-ratelimit-limit-${which}`, String(o.a.value))
      res.setHeader(`x-ratelimit-remaining-${which}`, String(remaining))
      res.setHeader(`x-ratelimit-reset-${which}`, openaiDuration((o.msUntilFull ?? 0) / 1000))
    }
  }
  appendDraft8(res, fields, policies)
}

/** A refusal's headers, and what `refuse` says about it. */
export function keyRefusal(res: Response, refusal: Outcome, keyId: string, isOpenAI: boolean, name: string, amount: number, partitionKeys: PartitionKeys): RefusalInfo {
  const a = refusal.a
  const refused = refusal.refused!
  const whose = a.scope === '*' ? 'this API key' : `this API key on ${a.scope}`
  setRateLimitHeaders(res, 'draft-8', { limit: a.value, remaining: refused.remaining, resetSeconds: refused.retryAfter, windowSeconds: refused.windowSeconds, name: `key-${a.limit}`, key: keyId, partitionKeys })
  if (isOpenAI && (a.limit === 'requests_per_minute' || a.limit === 'tokens_per_minute')) {
    const which = a.limit === 'tokens_per_minute' ? 'tokens' : 'requests'
    res.setHeader(`x-ratelimit-limit-${which}`, String(a.value))
    res.setHeader(`x-ratelimit-remaining-${which}`, String(Math.max(0, Math.floor(refused.remaining))))
    res.setHeader(`x-ratelimit-reset-${which}`, openaiDuration(refused.retryAfter))
  }
  const need = a.limit === 'tokens_per_minute' || a.limit === 'monthly_tokens' ? `; this request needs up to ${amount} tokens` : ''
  return {
    kind: KIND[a.limit],
    scope: 'key',
    name,
    limit: a.value,
    retryAfterSeconds: refused.retryAfter,
    message:
      a.limit === 'monthly_tokens'
        ? `Monthly token quota exhausted for ${whose}: ${Math.floor(refused.remaining)} of ${a.value} tokens left${need}. The quota resets at ${new Date(Date.now() + refused.retryAfter * 1000).toISOString()}.`
        : `Rate limit exceeded for ${whose}: ${a.value} ${WHAT[a.limit]}${need}. Retry after ${Math.max(1, Math.ceil(refused.retryAfter))} second${Math.ceil(refused.retryAfter) <= 1 ? '' : 's'}.`,
  }
}
