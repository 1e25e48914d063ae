import { createHash } from 'node:crypto'
import type { Request, Response } from 'express'
import {
  emitSecurityEvent,
  gatehouseLocals,
  normalizeIp,
  sendProviderError,
  type Logger,
  type ProviderErrorInfo,
  type SecurityEventHandler,
} from '@gatehouse/core'
import type { RateLimitErrorCode } from './errors'
import { errorProvider } from './keys'
import type { HeadersDraft } from './options'

/** What a limit looks like in the `RateLimit-*` headers. */
export interface HeaderInfo {
  limit: number
  remaining: number
  /** Seconds until the limit is whole again. */
  resetSeconds: number
  /** The policy window, in seconds. */
  windowSeconds: number
  /** draft-8 policy name. */
  name: string
  /** draft-8 partition key source. */
  key: string
  /** The limiter's partition keys (draft-8). */
  partitionKeys: PartitionKeys
}

/**
 * draft-8 partition keys (`pk`) of one limiter, by bucket key: a hash per response is measurable and
 * the keys repeat, so each limiter keeps the ones it wrote (at most 10 000, then it starts over).
 */
export class PartitionKeys {
  private readonly cache = new Map<string, string>()

  of(key: string): string {
    let pk = this.cache.get(key)
    if (pk === undefined) {
      pk = Buffer.from(createHash('sha256').update(key).digest('hex').slice(0, 12)).toString('base64')
      if (this.cache.size >= 10_000) this.cache.clear()
      this.cache.set(key, pk)
    }
    return pk
  }
}

/**
 * Add a member to a list-valued header (RFC 9110 §5.3: one line joined with ", " means the same as
 * several lines). One string rather than Express's `res.append` array: each array element is a
 * header line of its own to validate and write, and this runs for every limit of every request.
 */
function appendListValue(res: Response, name: string, value: string): void {
  const prev = res.getHeader(name)
  res.setHeader(name, prev === undefined ? value : `${Array.isArray(prev) ? prev.join(', ') : String(prev)}, ${value}`)
}

/** One draft-8 `RateLimit-Policy` member: the same text for a bucket on every request but its partition key's lookup. */
export function draft8PolicyItem(name: string, limit: number, windowSeconds: number, pk: string): string {
  return `"${name}"; q=${limit}; w=${Math.max(1, Math.ceil(windowSeconds))}; pk=:${pk}:`
}

/**
 * Add draft-8 `RateLimit` and `RateLimit-Policy` members (each one or more items already joined
 * with ", "), one header write each however many limits they name.
 */
export function appendDraft8(res: Response, fields: string, policies: string): void {
  if (res.headersSent || fields === '') return
  appendListValue(res, 'RateLimit', fields)
  appendListValue(res, 'RateLimit-Policy', policies)
}

/**
 * Write the `RateLimit-*` headers the way express-rate-limit does for the same draft, so a limit
 * enforced outside express-rate-limit (tokens, quotas) looks the same to clients.
 */
export function setRateLimitHeaders(res: Response, draft: HeadersDraft, info: HeaderInfo): void {
  if (res.headersSent) return
  const remaining = Math.max(0, Math.floor(info.remaining))
  const reset = Math.max(0, Math.ceil(info.resetSeconds))
  const w = Math.max(1, Math.ceil(info.windowSeconds))
  switch (draft) {
    case 'draft-6':
      res.setHeader('RateLimit-Policy', `${info.limit};w=${w}`)
      res.setHeader('RateLimit-Limit', String(info.limit))
      res.setHeader('RateLimit-Remaining', String(remaining))
      res.setHeader('RateLimit-Reset', String(reset))
      break
    case 'draft-7':
      res.setHeader('RateLimit-Policy', `${info.limit};w=${w}`)
      res.setHeader('RateLimit', `limit=${info.limit}, remaining=${remaining}, reset=${reset}`)
      break
    case 'draft-8':
      appendDraft8(res, `"${info.name}"; r=${remaining}; t=${reset}`, draft8PolicyItem(info.name, info.limit, w, info.partitionKeys.of(info.key)))
      break
  }
}

/** The kind of limit that refused a request. */
export type LimitKind = 'requests' | 'tokens' | 'quota' | 'concurrency'

export interface RefusalInfo {
  kind: LimitKind
  /** The limiter's scope (`ip`, `provider`…). */
  scope: string
  /** The limiter's name. */
  name: string
  limit: number
  retryAfterSeconds: number
  /** The client-facing message (no addresses, no keys). */
  message: string
  /** The provider whose bucket refused, for per-provider limits. */
  limitedProvider?: string
}

const CODE: Record<LimitKind, RateLimitErrorCode> = {
  requests: 'GH_RL_RATE_LIMITED',
  tokens: 'GH_RL_TOKEN_LIMITED',
  quota: 'GH_RL_QUOTA_EXCEEDED',
  concurrency: 'GH_RL_CONCURRENCY_LIMITED',
}

function providerInfo(kind: LimitKind, message: string): ProviderErrorInfo {
  // OpenAI tells its SDKs apart by these: rate limits are type "requests"/"tokens", a spent quota is
  // "insufficient_quota". Anthropic and Gemini have one type for all three.
  if (kind === 'quota') return { message, type: 'insufficient_quota', code: 'insufficient_quota' }
  if (kind === 'tokens') return { message, type: 'tokens', code: 'rate_limit_exceeded' }
  return { message }
}

/** A refusal by the caller's own per-address or per-key rate (not a quota, not a shared bucket). */
export const ownLimit = (info: Pick<RefusalInfo, 'kind' | 'scope'>): boolean =>
  (info.scope === 'ip' || info.scope === 'key') && info.kind !== 'quota'

/** Answer 429 in the provider's shape (headers are already set) and report a security_violation. */
export function refuse(
  req: Request,
  res: Response,
  onEvent: SecurityEventHandler | undefined,
  logger: Logger,
  info: RefusalInfo,
): void {
  const provider = errorProvider(req, res)
  const locals = gatehouseLocals(res)
  const openaiInfo = provider === 'openai' ? providerInfo(info.kind, info.message) : { message: info.message }
  sendProviderError(res, provider, 429, openaiInfo, {
    'Retry-After': String(Math.max(1, Math.ceil(info.retryAfterSeconds))),
  })
  emitSecurityEvent(
    onEvent,
    {
      event_type: 'security_violation',
      provider: info.limitedProvider ?? locals.provider ?? provider,
      ...(locals.clientKeyId ? { user_id: locals.clientKeyId } : {}),
      ip: normalizeIp(req.ip),
      ...(locals.requestId ? { request_id: locals.requestId } : {}),
      result: info.kind === 'quota' ? 'quota_exceeded' : 'rate_limited',
      details: {
        code: CODE[info.kind],
        scope: info.scope,
        limiter: info.name,
        limit_type: info.kind,
        limit: info.limit,
        retry_after_seconds: Math.max(1, Math.ceil(info.retryAfterSeconds)),
        // Whether the caller's own bucket refused (its address's or its key's): only those may
        // count towards blocking it. A shared bucket (global, provider) or a spent quota is
        // somebody else's doing as much as the caller's.
        own_limit: ownLimit(info),
      },
    },
    (err) =>
      logger.warn('@gatehouse/rate-limit: onEvent handler threw', {
        error: err instanceof Error ? err.message : String(err),
      }),
  )
}

/** Seconds a client is told to wait before retrying while the store is down under `deny`. */
export const STORE_DOWN_RETRY_SECONDS = 5

/** Answer 503 (store unreachable, onStoreError deny) and report it. No store detail reaches the client. */
export function refuseStoreDown(
  req: Request,
  res: Response,
  onEvent: SecurityEventHandler | undefined,
  logger: Logger,
  scope: string,
  name: string,
): void {
  const provider = errorProvider(req, res)
  const locals = gatehouseLocals(res)
  sendProviderError(
    res,
    provider,
    503,
    { message: 'Rate limiting is temporarily unavailable; retry shortly.' },
    { 'Retry-After': String(STORE_DOWN_RETRY_SECONDS) },
  )
  emitSecurityEvent(
    onEvent,
    {
      event_type: 'security_violation',
      provider: locals.provider ?? provider,
      ...(locals.clientKeyId ? { user_id: locals.clientKeyId } : {}),
      ip: normalizeIp(req.ip),
      ...(locals.requestId ? { request_id: locals.requestId } : {}),
      result: 'store_unavailable',
      details: { code: 'GH_RL_STORE_UNAVAILABLE', scope, limiter: name, on_store_error: 'deny', own_limit: false },
    },
    (err) =>
      logger.warn('@gatehouse/rate-limit: onEvent handler threw', {
        error: err instanceof Error ? err.message : String(err),
      }),
  )
}
