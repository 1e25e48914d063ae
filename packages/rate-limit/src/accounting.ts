import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { gatehouseLocals, tokenCharge, type Logger } from '@gatehouse/core'
import { clientKey, ipKey, requestIp, requestProvider } from './keys'
import type { RateLimitScope, StoreErrorMode } from './options'
import { refuseStoreDown, type LimitKind } from './refusal'
import type { RateLimitStore } from './store'
import { estimateTokens } from './tokens'

/** What one limiter decided for a request, in `res.locals.gatehouse.rateLimit["<kind>:<name>"]`. */
export interface RateLimitDecision {
  kind: LimitKind
  scope: string
  /** The bucket size or quota. */
  limit: number
  /** Left after this request (tokens and quotas: after its reservation). */
  remaining: number
  /** Tokens reserved for this request (tokens and quotas). */
  reserved?: number
  /** True when the store was unreachable and the request was let through (onStoreError allow). */
  failedOpen?: boolean
}

declare module '@gatehouse/core' {
  interface GatehouseLocals {
    /** Decisions of @gatehouse/rate-limit's limiters, by `<kind>:<name>`. */
    rateLimit?: Record<string, RateLimitDecision>
  }
}

/** Counters a limiter keeps (feed them to metrics). */
export interface RateLimitStats {
  /** Requests refused with 429. */
  limited: number
  /** Store operations that failed (admission and settlement). */
  storeErrors: number
  /** Requests served without limiting because the store was down (onStoreError allow). */
  failedOpen: number
  /** Requests refused with 503 because the store was down (onStoreError deny). */
  failedClosed: number
}

/** A limiter: an Express middleware with its counters and its store. */
export type RateLimitHandler = RequestHandler & {
  stats(): RateLimitStats
  readonly store: RateLimitStore
  /** Shut down the store if the limiter created it (a store you passed in is yours to shut down). */
  shutdown(): Promise<void>
}

const LOG_EVERY_MS = 5000

/**
 * What a request reserves: request-guard's estimate from the validated body (prompt + the
 * effective output bound) when it ran, else an estimate from the headers (estimateTokens).
 */
export function reservation(req: Request, res: Response, defaultMaxTokens: number): number {
  const e = gatehouseLocals(res).tokenEstimate
  return e ? e.promptTokens + e.outputTokens : estimateTokens(req, defaultMaxTokens).total
}

/**
 * What a finished request is charged (core's tokenCharge): the provider's usage, the pessimistic
 * bound when the upstream got the request and reported none, nothing when it never got it or
 * refused it; the reservation itself when nothing is known.
 */
export function settledTokens(res: Response, reserved: number): number {
  const charge = tokenCharge(res)
  return charge.source === 'unknown' ? reserved : charge.tokens
}

export const seconds = (s: number): string => {
  const n = Math.max(1, Math.ceil(s))
  return `${n} second${n === 1 ? '' : 's'}`
}

/** Counters, and store-failure handling with throttled error logging. */
export class Accounting {
  readonly counts: RateLimitStats = { limited: 0, storeErrors: 0, failedOpen: 0, failedClosed: 0 }
  private lastLog = 0
  private suppressed = 0

  constructor(
    private readonly logger: Logger,
    private readonly mode: StoreErrorMode,
    private readonly scope: string,
    private readonly name: string,
  ) {}

  private log(message: string, err: unknown): void {
    const now = Date.now()
    if (now - this.lastLog < LOG_EVERY_MS) {
      this.suppressed++
      return
    }
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : undefined
    this.logger.error(message, {
      code: 'GH_RL_STORE_UNAVAILABLE',
      limiter: this.name,
      scope: this.scope,
      error: err instanceof Error ? err.message : String(err),
      ...(cause ? { cause } : {}),
      suppressed: this.suppressed,
    })
    this.lastLog = now
    this.suppressed = 0
  }

  /** The store failed at admission: serve or refuse per onStoreError. */
  admissionFailed(
    err: unknown,
    req: Request,
    res: Response,
    next: NextFunction,
    onEvent: Parameters<typeof refuseStoreDown>[2],
    kind: LimitKind,
  ): void {
    this.counts.storeErrors++
    if (this.mode === 'allow') {
      this.counts.failedOpen++
      this.log(
        '@gatehouse/rate-limit: store unavailable; serving without this limit (onStoreError allow)',
        err,
      )
      record(res, kind, this.name, { kind, scope: this.scope, limit: 0, remaining: 0, failedOpen: true })
      next()
      return
    }
    this.counts.failedClosed++
    this.log('@gatehouse/rate-limit: store unavailable; refusing with 503 (onStoreError deny)', err)
    refuseStoreDown(req, res, onEvent, this.logger, this.scope, this.name)
  }

  /** A settlement failed: the reservation stays as it was (conservative). */
  settleFailed(err: unknown): void {
    this.counts.storeErrors++
    this.log(
      '@gatehouse/rate-limit: store unavailable; a reservation could not be settled and stays charged',
      err,
    )
  }
}

export function record(res: Response, kind: LimitKind, name: string, decision: RateLimitDecision): void {
  const locals = gatehouseLocals(res)
  ;(locals.rateLimit ??= {})[`${kind}:${name}`] = decision
}

/** Run `fn` once when the response is done (finish, or close without finish). */
export function whenDone(res: Response, fn: () => void): void {
  let done = false
  const once = (): void => {
    if (done) return
    done = true
    res.off('finish', once)
    res.off('close', once)
    fn()
  }
  res.once('finish', once)
  res.once('close', once)
}

export const SCOPE_TEXT: Record<string, string> = {
  global: 'the gateway',
  ip: 'this client address',
  key: 'this API key',
  provider: 'this provider',
}

export function bucketKeyFor(
  scope: RateLimitScope,
  req: Request,
  res: Response,
  ipv6Subnet: number | false,
): string | undefined {
  switch (scope) {
    case 'global':
      return 'global'
    case 'ip':
      return ipKey(requestIp(req), ipv6Subnet)
    case 'key':
      return clientKey(req, res, ipv6Subnet)
    case 'provider':
      return requestProvider(req, res)
  }
}

export function decorate<T extends RequestHandler>(
  handler: T,
  store: RateLimitStore,
  ownsStore: boolean,
  accounting: Accounting,
): T & RateLimitHandler {
  return Object.assign(handler, {
    stats: (): RateLimitStats => ({ ...accounting.counts }),
    store,
    shutdown: async (): Promise<void> => {
      if (ownsStore) await store.shutdown()
    },
  })
}
