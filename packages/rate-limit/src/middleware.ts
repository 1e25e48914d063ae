import type { NextFunction, Request, RequestHandler, Response } from 'express'
import {
  rateLimit as expressRateLimit,
  type RateLimitInfo,
  type RateLimitRequestHandler,
} from 'express-rate-limit'
import { gatehouseLocals, tokenCharge, type Logger } from '@gatehouse/core'
import { TokenBucketStore } from './bucket-store'
import { clientKey, ipKey, proxyChecker, requestIp, requestProvider } from './keys'
import { MemoryStore } from './memory-store'
import { own, resolveQuotaConfig, resolveRateLimitConfig, resolveTokenLimitConfig, type BucketRule } from './limit-config'
import type { QuotaOptions, RateLimitOptions, RateLimitScope, StoreErrorMode, TokenLimitOptions } from './options'
import { periodEnd, periodStart } from './period'
import { refuse, refuseStoreDown, setRateLimitHeaders, type LimitKind } from './refusal'
import { isStoreUnavailable, type BucketRef, type QuotaRef, type RateLimitStore } from './store'
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

/** Usage of one quota counter. */
export interface QuotaUsage {
  limit: number
  used: number
  /** Never negative. */
  remaining: number
  /** When the counter starts again. */
  resetsAt: Date
}

export type QuotaHandler = RateLimitHandler & {
  /** The counter of a provider (scope provider), key id (scope key) or `global` (scope global). */
  usage(id: string): Promise<QuotaUsage | undefined>
}

const LOG_EVERY_MS = 5000

/**
 * What a request reserves: request-guard's estimate from the validated body (prompt + the
 * effective output bound) when it ran, else an estimate from the headers (estimateTokens).
 */
function reservation(req: Request, res: Response, defaultMaxTokens: number): number {
  const e = gatehouseLocals(res).tokenEstimate
  return e ? e.promptTokens + e.outputTokens : estimateTokens(req, defaultMaxTokens).total
}

/**
 * What a finished request is charged (core's tokenCharge): the provider's usage, the pessimistic
 * bound when the upstream got the request and reported none, nothing when it never got it or
 * refused it; the reservation itself when nothing is known.
 */
function settledTokens(res: Response, reserved: number): number {
  const charge = tokenCharge(res)
  return charge.source === 'unknown' ? reserved : charge.tokens
}

const seconds = (s: number): string => {
  const n = Math.max(1, Math.ceil(s))
  return `${n} second${n === 1 ? '' : 's'}`
}

/** Counters, and store-failure handling with throttled error logging. */
class Accounting {
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

function record(res: Response, kind: LimitKind, name: string, decision: RateLimitDecision): void {
  const locals = gatehouseLocals(res)
  ;(locals.rateLimit ??= {})[`${kind}:${name}`] = decision
}

/** Run `fn` once when the response is done (finish, or close without finish). */
function whenDone(res: Response, fn: () => void): void {
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

const SCOPE_TEXT: Record<string, string> = {
  global: 'the gateway',
  ip: 'this client address',
  key: 'this API key',
  provider: 'this provider',
}

function bucketKeyFor(
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

function erlLogger(logger: Logger): {
  error: (e: unknown, m?: string) => void
  warn: (e: unknown, m?: string) => void
} {
  const meta = (e: unknown): Record<string, unknown> => ({
    error: e instanceof Error ? e.message : String(e),
    ...(typeof (e as { code?: unknown } | null)?.code === 'string'
      ? { code: (e as { code: string }).code }
      : {}),
  })
  return {
    error: (e, m) => logger.error(m ?? 'express-rate-limit error', meta(e)),
    warn: (e, m) => logger.warn(m ?? 'express-rate-limit warning', meta(e)),
  }
}

/**
 * Request limits as token buckets on express-rate-limit: one bucket per scope key (the whole
 * gateway, each client address, each client key or each provider) holding `burst` requests and
 * refilling at the configured rate. A refused request gets 429 in the provider's error shape with
 * `Retry-After` and `RateLimit-*` headers, and a `security_violation` event.
 */
export function rateLimit(options: RateLimitOptions): RateLimitHandler {
  const config = resolveRateLimitConfig(options, () => new MemoryStore())
  const namespace = `req:${config.name}`
  const accounting = new Accounting(config.logger, config.onStoreError, config.scope, config.name)

  const build = (rule: BucketRule): RateLimitRequestHandler =>
    expressRateLimit({
      windowMs: (rule.capacity / rule.refillPerSecond) * 1000,
      limit: rule.capacity,
      standardHeaders: config.standardHeaders,
      legacyHeaders: config.legacyHeaders,
      identifier: config.name,
      store: new TokenBucketStore({
        store: config.store,
        namespace,
        capacity: rule.capacity,
        refillPerSecond: rule.refillPerSecond,
      }),
      keyGenerator: (req, res) => bucketKeyFor(config.scope, req, res, config.ipv6Subnet) ?? 'unknown',
      passOnStoreError: false,
      logger: erlLogger(config.logger),
      handler: (req, res) => {
        accounting.counts.limited++
        const info = (req as Request & { rateLimit?: RateLimitInfo }).rateLimit
        const retryAfter = info?.resetTime ? (info.resetTime.getTime() - Date.now()) / 1000 : 1
        const per =
          rule.refillPerSecond >= 1
            ? `${+rule.refillPerSecond.toFixed(3)} per second`
            : `${+(rule.refillPerSecond * 60).toFixed(3)} per minute`
        const provider = config.scope === 'provider' ? requestProvider(req, res) : undefined
        refuse(req, res, config.onEvent, config.logger, {
          kind: 'requests',
          scope: config.scope,
          name: config.name,
          limit: rule.capacity,
          retryAfterSeconds: retryAfter,
          message: `Rate limit exceeded for ${provider ? `provider ${provider}` : SCOPE_TEXT[config.scope]}: ${per}, burst ${rule.capacity}. Retry after ${seconds(retryAfter)}.`,
          ...(provider ? { limitedProvider: provider } : {}),
        })
      },
    })

  // Every limiter is built here, at construction (express-rate-limit warns about limiters made
  // inside a request). Providers without a rate of their own share one limiter, whose buckets are
  // still one per provider because the key is the provider's name.
  const single = config.rule ? build(config.rule) : undefined
  const perProvider = new Map(Object.entries(config.providers).map(([name, rule]) => [name, build(rule)]))

  const pick = (req: Request, res: Response): RateLimitRequestHandler | undefined => {
    if (config.scope !== 'provider') return single
    const provider = requestProvider(req, res)
    if (provider === undefined) return undefined
    return perProvider.get(provider) ?? single
  }

  const checkProxy =
    config.scope === 'ip' || config.scope === 'key'
      ? proxyChecker((m, meta) => config.logger.warn(m, meta))
      : undefined

  const handler = function rateLimitMiddleware(req: Request, res: Response, next: NextFunction): void {
    checkProxy?.(req)
    const limiter = pick(req, res)
    if (!limiter) {
      next()
      return
    }
    void limiter(req, res, (err?: unknown) => {
      if (err === undefined || err === null) {
        const info = (req as Request & { rateLimit?: RateLimitInfo }).rateLimit
        if (info)
          record(res, 'requests', config.name, {
            kind: 'requests',
            scope: config.scope,
            limit: info.limit,
            remaining: info.remaining,
          })
        next()
        return
      }
      if (isStoreUnavailable(err)) {
        accounting.admissionFailed(err, req, res, next, config.onEvent, 'requests')
        return
      }
      next(err)
    })
  }
  return decorate(handler, config.store, config.ownsStore, accounting)
}

function decorate<T extends RequestHandler>(
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

/**
 * Tokens per minute as token buckets: admission reserves the request's estimated tokens (prompt
 * bytes / 4 plus its max_tokens, see estimateTokens) and refuses with 429 when the bucket does not
 * hold them; when the response ends the reservation is settled against the usage the provider
 * reported in `res.locals.gatehouse.usage`. Without reported usage the reservation stays charged.
 * Stream chunks are never held: settlement happens after the response has finished.
 */
export function tokenLimit(options: TokenLimitOptions): RateLimitHandler {
  const config = resolveTokenLimitConfig(options, () => new MemoryStore())
  const namespace = `tok:${config.name}`
  const accounting = new Accounting(config.logger, config.onStoreError, config.scope, config.name)

  const checkProxy =
    config.scope === 'ip' || config.scope === 'key'
      ? proxyChecker((m, meta) => config.logger.warn(m, meta))
      : undefined

  const handler = function tokenLimitMiddleware(req: Request, res: Response, next: NextFunction): void {
    checkProxy?.(req)
    const key = bucketKeyFor(config.scope, req, res, config.ipv6Subnet)
    if (key === undefined) {
      next()
      return
    }
    const provider = config.scope === 'provider' ? key : undefined
    const rule = (provider !== undefined ? own(config.providers, provider) : undefined) ?? config.rule
    if (!rule) {
      next()
      return
    }
    // A request larger than the whole bucket reserves the whole bucket: it can still run (when the
    // bucket is full) and pays the rest when its usage is settled.
    const amount = Math.min(reservation(req, res, config.defaultMaxTokens), rule.capacity)
    if (amount === 0) {
      next()
      return
    }
    const ref: BucketRef = { namespace, key, capacity: rule.capacity, refillPerSecond: rule.refillPerSecond }
    let called = false
    const proceed = (err?: unknown): void => {
      if (called) return
      called = true
      next(err)
    }
    config.store.take(ref, amount).then(
      (state) => {
        const windowSeconds = rule.capacity / rule.refillPerSecond
        if (!state.allowed) {
          accounting.counts.limited++
          const retryAfter = state.msUntilAvailable / 1000
          setRateLimitHeaders(res, config.standardHeaders, {
            limit: rule.capacity,
            remaining: state.tokens,
            resetSeconds: retryAfter,
            windowSeconds,
            name: config.name,
            key,
          })
          refuse(req, res, config.onEvent, config.logger, {
            kind: 'tokens',
            scope: config.scope,
            name: config.name,
            limit: rule.capacity,
            retryAfterSeconds: retryAfter,
            message: `Token rate limit exceeded for ${provider ? `provider ${provider}` : SCOPE_TEXT[config.scope]}: ${Math.round(rule.refillPerSecond * 60)} tokens per minute; this request needs up to ${amount}. Retry after ${seconds(retryAfter)}.`,
            ...(provider ? { limitedProvider: provider } : {}),
          })
          return
        }
        record(res, 'tokens', config.name, {
          kind: 'tokens',
          scope: config.scope,
          limit: rule.capacity,
          remaining: Math.max(0, Math.floor(state.tokens)),
          reserved: amount,
        })
        whenDone(res, () => {
          const actual = settledTokens(res, amount)
          if (actual === amount) return
          config.store.adjust(ref, actual - amount).catch((err: unknown) => accounting.settleFailed(err))
        })
        proceed()
      },
      (err: unknown) => {
        if (isStoreUnavailable(err))
          accounting.admissionFailed(err, req, res, proceed, config.onEvent, 'tokens')
        else proceed(err)
      },
    )
  }
  return decorate(handler, config.store, config.ownsStore, accounting)
}

/**
 * Monthly token quotas (calendar month, UTC) per provider, per client key or for the whole
 * gateway. Admission reserves the request's estimated tokens and refuses with 429 unless the whole
 * reservation fits in what is left, so the counter never passes the limit at admission; the
 * reservation is settled against reported usage when the response ends (kept when none was
 * reported). Counters survive restarts: in Redis, or in memoryStore's `quotaFile`.
 */
export function quota(options: QuotaOptions): QuotaHandler {
  const config = resolveQuotaConfig(options, () => new MemoryStore())
  const namespace = `quota:${config.name}`
  const accounting = new Accounting(config.logger, config.onStoreError, config.scope, config.name)

  const limitFor = (id: string): number | undefined =>
    config.scope === 'provider'
      ? (own(config.providers, id) ?? config.limit)
      : config.scope === 'key'
        ? (own(config.keys, id) ?? config.limit)
        : config.limit

  const target = (req: Request, res: Response): string | undefined => {
    switch (config.scope) {
      case 'global':
        return 'global'
      case 'provider':
        return requestProvider(req, res)
      case 'key': {
        // Only authenticated keys are counted: a counter per address would be unbounded.
        const id = gatehouseLocals(res).clientKeyId
        return typeof id === 'string' && id !== '' ? id : undefined
      }
    }
  }

  const handler = function quotaMiddleware(req: Request, res: Response, next: NextFunction): void {
    const id = target(req, res)
    const limit = id === undefined ? undefined : limitFor(id)
    if (id === undefined || limit === undefined) {
      next()
      return
    }
    const amount = reservation(req, res, config.defaultMaxTokens)
    const ref: QuotaRef = { namespace, key: id, limit }
    let called = false
    const proceed = (err?: unknown): void => {
      if (called) return
      called = true
      next(err)
    }
    config.store.quotaReserve(ref, amount).then(
      (state) => {
        const remaining = Math.max(0, limit - state.used)
        if (!state.allowed) {
          accounting.counts.limited++
          const end = periodEnd(state.period)
          const retryAfter = state.msUntilReset / 1000
          setRateLimitHeaders(res, config.standardHeaders, {
            limit,
            remaining,
            resetSeconds: retryAfter,
            windowSeconds: (end - periodStart(state.period)) / 1000,
            name: config.name,
            key: id,
          })
          const whose =
            config.scope === 'provider'
              ? `provider ${id}`
              : config.scope === 'key'
                ? 'this API key'
                : 'the gateway'
          refuse(req, res, config.onEvent, config.logger, {
            kind: 'quota',
            scope: config.scope,
            name: config.name,
            limit,
            retryAfterSeconds: retryAfter,
            message: `Monthly token quota exhausted for ${whose}: ${remaining} of ${limit} tokens left, this request needs up to ${amount}. The quota resets at ${new Date(end).toISOString()}.`,
            ...(config.scope === 'provider' ? { limitedProvider: id } : {}),
          })
          return
        }
        record(res, 'quota', config.name, {
          kind: 'quota',
          scope: config.scope,
          limit,
          remaining,
          reserved: amount,
        })
        whenDone(res, () => {
          const actual = settledTokens(res, amount)
          if (actual === amount) return
          config.store
            .quotaSettle(ref, state.period, actual - amount)
            .catch((err: unknown) => accounting.settleFailed(err))
        })
        proceed()
      },
      (err: unknown) => {
        if (isStoreUnavailable(err))
          accounting.admissionFailed(err, req, res, proceed, config.onEvent, 'quota')
        else proceed(err)
      },
    )
  }

  const usage = async (id: string): Promise<QuotaUsage | undefined> => {
    const limit = limitFor(id)
    if (limit === undefined) return undefined
    const state = await config.store.quotaGet({ namespace, key: id, limit })
    return {
      limit,
      used: state.used,
      remaining: Math.max(0, limit - state.used),
      resetsAt: new Date(periodEnd(state.period)),
    }
  }
  return Object.assign(decorate(handler, config.store, config.ownsStore, accounting), { usage })
}
