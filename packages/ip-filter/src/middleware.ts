import {
  requestAddress,
  emitSecurityEvent,
  gatehouseLocals,
  GatehouseError,
  detectProvider,
  resolveProviderRoute,
  sendProviderError,
} from '@gatehouse/core'
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import {
  addressText,
  ipv4Text,
  isCidrError,
  parseCidr,
  parseClientAddress,
  embeddedKind,
  embeddedWord,
  parseIpv4Fast,
  parseIpv6Into,
  type CidrEntry,
  type ClientAddress,
} from './address'
import { resolveIpFilterConfig, type IpFilterConfig, type IpFilterOptions, type ListRule } from './options'
import type { DenylistEntry } from './store'
import { PrefixTrie } from './trie'

const PKG = '@gatehouse/ip-filter'
/** setTimeout's longest delay; a later expiry is re-armed when the timer fires. */
const MAX_TIMER_MS = 2_147_483_647
const MAX_TTL_SECONDS = 10 * 365 * 86_400
const MAX_REASON_LENGTH = 500

/** Why a request was let through or refused. */
export type IpFilterResult =
  | 'allowlisted'
  | 'no_rule'
  | 'ip_denied'
  | 'ip_not_allowed'
  | 'invalid_address'
  | 'store_unavailable'

/** The outcome of checking one address. */
export interface IpDecision {
  allowed: boolean
  result: Exclude<IpFilterResult, 'store_unavailable'>
  /** Which list decided: the static lists or the runtime denylist. */
  list?: 'allowlist' | 'denylist' | 'runtime'
  /** The rule that decided: `denylist.deniedIps[3]`, `allowlist.allowedIps[0]` or `runtime`. */
  rule?: string
  /** The matching entry in canonical form (`10.0.0.0/8`). */
  entry?: string
  /** The IPv4 address the client matched as, when it matched through an IPv6 form that embeds it. */
  matchedAs?: string
  /** The reason recorded with a runtime denylist entry. */
  reason?: string
}

/** What the middleware leaves in `res.locals.gatehouse.ipFilter`. */
export interface IpFilterLocals {
  /** The client address as checked (`req.ip`, IPv4-mapped shown as IPv4). */
  ip: string
  allowed: boolean
  result: IpFilterResult
  list?: 'allowlist' | 'denylist' | 'runtime'
  rule?: string
  entry?: string
  matchedAs?: string
  reason?: string
  /** True when the runtime store was unreachable and the request was decided on the last entries loaded. */
  degraded?: boolean
}

declare module '@gatehouse/core' {
  interface GatehouseLocals {
    ipFilter?: IpFilterLocals
  }
}

/** Options of `add()`. */
export interface DenylistAddOptions {
  /** Why (shown by `list()` and in refusal events). @default '' */
  reason?: string | undefined
  /** Remove the entry after this many seconds. @default undefined (permanent) */
  ttlSeconds?: number | undefined
}

/** The middleware, with the runtime denylist and a direct check attached. */
export interface IpFilterMiddleware extends RequestHandler {
  /** Add an address or CIDR to the runtime denylist; the next request from it is refused. */
  add(ipOrCidr: string, options?: DenylistAddOptions): Promise<DenylistEntry>
  /** Remove a runtime entry (any notation of the same network); resolves true when one was there. */
  remove(ipOrCidr: string): Promise<boolean>
  /** The live runtime entries, oldest first. */
  list(): Promise<DenylistEntry[]>
  /** Decide for one address with the lists as loaded now (synchronous, no store round trip). The result is frozen. */
  check(ip: string): Readonly<IpDecision>
  /** Resolves once the runtime entries have been loaded the first time. */
  ready(): Promise<void>
  /** False while the runtime store is unreachable (for a readiness probe). */
  isStoreHealthy(): boolean
  /** Stop listening to the store and stop timers; shuts the store down only if the filter created it. */
  shutdown(): Promise<void>
}

interface Match {
  /** The decisions this rule gives when it matches the address itself (shared, frozen). */
  readonly denied: Readonly<IpDecision>
  readonly allowed: Readonly<IpDecision>
  readonly list: 'allowlist' | 'denylist' | 'runtime'
  readonly rule: string
  readonly entry: string
  readonly reason?: string
  readonly prefix: number
  /** ms since the epoch; Infinity for a permanent entry */
  readonly expiresAt: number
}

const NO_RULE: Readonly<IpDecision> = Object.freeze({ allowed: true, result: 'no_rule' })
const NOT_ALLOWED: Readonly<IpDecision> = Object.freeze({ allowed: false, result: 'ip_not_allowed' })
const INVALID: Readonly<IpDecision> = Object.freeze({ allowed: false, result: 'invalid_address' })

function match(fields: Omit<Match, 'denied' | 'allowed'>): Match {
  const base = { list: fields.list, rule: fields.rule, entry: fields.entry, ...(fields.reason !== undefined ? { reason: fields.reason } : {}) }
  return {
    ...fields,
    denied: Object.freeze<IpDecision>({ allowed: false, result: 'ip_denied', ...base }),
    allowed: Object.freeze<IpDecision>({ allowed: true, result: 'allowlisted', ...base }),
  }
}

const fromListRule = (r: ListRule): Match =>
  match({ list: r.list, rule: r.rule, entry: r.cidr.text, prefix: r.cidr.prefix, expiresAt: Infinity })

function insert(v4: PrefixTrie<Match>, v6: PrefixTrie<Match>, cidr: CidrEntry, m: Match): void {
  ;(cidr.family === 4 ? v4 : v6).insert(cidr.words, cidr.prefix, m)
}

function invalidEntry(message: string): GatehouseError {
  return new GatehouseError('GH_IPF_INVALID_ENTRY', `${PKG}: ${message}`, 400)
}

/** The lists, compiled, plus the runtime state. One per `ipFilter()` call. */
class IpFilterEngine {
  private readonly deny4 = new PrefixTrie<Match>(32)
  private readonly deny6 = new PrefixTrie<Match>(128)
  private readonly allow4 = new PrefixTrie<Match>(32)
  private readonly allow6 = new PrefixTrie<Match>(128)
  private runtime4 = new PrefixTrie<Match>(32)
  private runtime6 = new PrefixTrie<Match>(128)

  loaded = false
  private healthy = true
  private closed = false
  private requested = 0
  private started = 0
  private running = false
  private lastAttempt = 0
  private lastDegradedLog = 0
  private waiters: { gen: number; resolve: () => void }[] = []
  private expiryTimer: NodeJS.Timeout | undefined
  private readonly unsubscribe: () => void
  readonly initial: Promise<void>

  constructor(private readonly config: IpFilterConfig) {
    for (const r of config.deny) insert(this.deny4, this.deny6, r.cidr, fromListRule(r))
    for (const r of config.allow) insert(this.allow4, this.allow6, r.cidr, fromListRule(r))
    if (config.allowlistEnabled) {
      for (const a of config.allow) {
        const d = this.coveringDeny(a.cidr)
        if (d) {
          config.logger.warn(
            `${PKG}: ${d.rule} (${d.entry}) covers ${a.rule} (${a.cidr.text}); deny rules win, so that allow entry never applies`,
          )
        }
      }
    }
    this.unsubscribe = config.store.subscribe(() => void this.reload())
    this.initial = this.reload()
  }

  /** A static deny rule whose network contains the whole of `cidr`. */
  private coveringDeny(cidr: CidrEntry): Match | undefined {
    const w = cidr.words
    const m = cidr.family === 4 ? this.deny4.lookup(w[0]) : this.deny6.lookup(w[0], w[1], w[2], w[3])
    return m && m.prefix <= cidr.prefix ? m : undefined
  }

  private readonly notExpired = (m: Match): boolean => m.expiresAt > Date.now()

  /** Scratch space for parsing on the synchronous check path (never held across an await). */
  private readonly groups = new Int32Array(8)
  private readonly words = new Uint32Array(4)

  check(ip: string): Readonly<IpDecision> {
    if (typeof ip !== 'string') return INVALID
    // Canonical IPv4 and IPv6 text, as Node reports socket addresses, without any allocation.
    if (ip.indexOf(':') < 0) {
      const v4 = parseIpv4Fast(ip)
      if (v4 >= 0) return this.checkIpv4(v4)
    } else if (ip.charCodeAt(0) !== 91 && ip.indexOf('%') < 0 && parseIpv6Into(ip, 0, ip.length, this.groups, this.words)) {
      const w = this.words
      return this.checkIpv6(w[0]!, w[1]!, w[2]!, w[3]!)
    }
    const addr = parseClientAddress(ip)
    return addr ? this.checkAddress(addr) : INVALID
  }

  checkAddress(addr: ClientAddress): Readonly<IpDecision> {
    const v6 = addr.v6
    if (v6) return this.checkIpv6(v6[0], v6[1], v6[2], v6[3])
    return addr.v4 >= 0 ? this.checkIpv4(addr.v4) : INVALID
  }

  private checkIpv4(v4: number): Readonly<IpDecision> {
    const m = this.deny4.lookup(v4) ?? this.runtime4.lookup(v4, 0, 0, 0, this.notExpired)
    if (m) return m.denied
    if (!this.config.allowlistEnabled) return NO_RULE
    return this.allow4.lookup(v4)?.allowed ?? NOT_ALLOWED
  }

  private checkIpv6(a: number, b: number, c: number, d: number): Readonly<IpDecision> {
    const kind = embeddedKind(a, b, c, d)
    // IPv4-mapped is only a notation for the IPv4 address.
    if (kind === 1) return this.checkIpv4(d)
    const m6 = this.deny6.lookup(a, b, c, d) ?? this.runtime6.lookup(a, b, c, d, this.notExpired)
    if (m6) return m6.denied
    const v4 = embeddedWord(kind, a, b, d)
    if (v4 >= 0) {
      const m4 = this.deny4.lookup(v4) ?? this.runtime4.lookup(v4, 0, 0, 0, this.notExpired)
      if (m4) return { ...m4.denied, matchedAs: ipv4Text(v4) }
    }
    if (!this.config.allowlistEnabled) return NO_RULE
    const a6 = this.allow6.lookup(a, b, c, d)
    if (a6) return a6.allowed
    if (v4 >= 0 && this.config.allowEmbeddedIpv4) {
      const a4 = this.allow4.lookup(v4)
      if (a4) return { ...a4.allowed, matchedAs: ipv4Text(v4) }
    }
    return NOT_ALLOWED
  }

  /** True while the runtime entries are known to be current. */
  storeHealthy(): boolean {
    return this.healthy && (this.config.store.isAvailable?.() ?? true)
  }

  /** While the store is down, retry at most once a second, driven by traffic. */
  maybeRecover(): void {
    if (!this.running && Date.now() - this.lastAttempt >= 1000) void this.reload()
  }

  logDegraded(): void {
    const now = Date.now()
    if (now - this.lastDegradedLog < 10_000) return
    this.lastDegradedLog = now
    this.config.logger.error(
      `${PKG}: the runtime denylist store is unreachable; serving with the entries loaded last (onStoreError: 'allow')`,
    )
  }

  /** Reload the runtime entries; resolves after a load that started after this call. */
  reload(): Promise<void> {
    if (this.closed) return Promise.resolve()
    const gen = ++this.requested
    const done = new Promise<void>((resolve) => this.waiters.push({ gen, resolve }))
    if (!this.running) void this.loop()
    return done
  }

  private async loop(): Promise<void> {
    this.running = true
    try {
      while (this.started < this.requested && !this.closed) {
        const gen = (this.started = this.requested)
        this.lastAttempt = Date.now()
        try {
          const entries = await this.config.store.list()
          if (!this.closed) this.rebuild(entries)
          if (!this.healthy) this.config.logger.info(`${PKG}: the runtime denylist store is reachable again`)
          this.healthy = true
        } catch (err) {
          if (this.healthy) {
            this.config.logger.error(`${PKG}: could not load the runtime denylist`, {
              error: err instanceof Error ? err.message : String(err),
            })
          }
          this.healthy = false
        }
        this.loaded = true
        const ready = this.waiters.filter((w) => w.gen <= gen)
        this.waiters = this.waiters.filter((w) => w.gen > gen)
        for (const w of ready) w.resolve()
      }
    } finally {
      this.running = false
      if (this.closed) {
        for (const w of this.waiters) w.resolve()
        this.waiters = []
      }
    }
  }

  private rebuild(entries: readonly DenylistEntry[]): void {
    const v4 = new PrefixTrie<Match>(32)
    const v6 = new PrefixTrie<Match>(128)
    const now = Date.now()
    let next = Infinity
    for (const e of entries) {
      const cidr = parseCidr(e.ip)
      if (isCidrError(cidr)) {
        this.config.logger.warn(`${PKG}: ignoring a runtime denylist entry that is not an address or CIDR`, { ip: e.ip })
        continue
      }
      const expiresAt = e.expiresAt ? e.expiresAt.getTime() : Infinity
      if (expiresAt <= now) continue
      next = Math.min(next, expiresAt)
      insert(v4, v6, cidr, match({ list: 'runtime', rule: 'runtime', entry: cidr.text, reason: e.reason, prefix: cidr.prefix, expiresAt }))
    }
    this.runtime4 = v4
    this.runtime6 = v6
    if (this.expiryTimer) clearTimeout(this.expiryTimer)
    this.expiryTimer = undefined
    if (next !== Infinity && !this.closed) {
      // Lookups already skip expired entries; this only drops them from the compiled copy.
      this.expiryTimer = setTimeout(() => void this.reload(), Math.min(MAX_TIMER_MS, Math.max(0, next - now) + 5))
      this.expiryTimer.unref()
    }
  }

  async add(ipOrCidr: unknown, options: unknown): Promise<DenylistEntry> {
    const cidr = parseCidr(ipOrCidr)
    if (isCidrError(cidr)) throw invalidEntry(`${JSON.stringify(ipOrCidr)} is not a valid address or CIDR`)
    if (cidr.prefix === 0 && this.config.allowlistEnabled) {
      throw new GatehouseError(
        'GH_IPF_DENY_EVERYTHING',
        `${PKG}: ${JSON.stringify(ipOrCidr)} denies every IPv${cidr.family} address, and deny rules always win, so it would block the allowlist too; use allowlist.denyAll instead`,
        400,
      )
    }
    const o = options ?? {}
    if (typeof o !== 'object' || Array.isArray(o)) throw invalidEntry('add() options must be an object')
    for (const key of Object.keys(o)) {
      if (key !== 'reason' && key !== 'ttlSeconds') throw invalidEntry(`add() has no option ${JSON.stringify(key)} (reason, ttlSeconds)`)
    }
    const { reason, ttlSeconds } = o as { reason?: unknown; ttlSeconds?: unknown }
    if (reason !== undefined && (typeof reason !== 'string' || reason.length > MAX_REASON_LENGTH)) {
      throw invalidEntry(`reason must be a string of at most ${MAX_REASON_LENGTH} characters`)
    }
    if (
      ttlSeconds !== undefined &&
      (typeof ttlSeconds !== 'number' || !Number.isFinite(ttlSeconds) || ttlSeconds <= 0 || ttlSeconds > MAX_TTL_SECONDS)
    ) {
      throw invalidEntry(`ttlSeconds must be a number > 0 and <= ${MAX_TTL_SECONDS} (got ${JSON.stringify(ttlSeconds)})`)
    }
    const now = Date.now()
    const entry: DenylistEntry = {
      ip: cidr.text,
      reason: reason ?? '',
      addedAt: new Date(now),
      expiresAt: ttlSeconds === undefined ? null : new Date(now + Math.round(ttlSeconds * 1000)),
    }
    await this.config.store.add(entry)
    await this.reload()
    this.config.logger.info(`${PKG}: runtime denylist entry added`, {
      ip: entry.ip,
      reason: entry.reason,
      expiresAt: entry.expiresAt?.toISOString() ?? null,
    })
    return { ...entry, addedAt: new Date(now), expiresAt: entry.expiresAt ? new Date(entry.expiresAt.getTime()) : null }
  }

  async remove(ipOrCidr: unknown): Promise<boolean> {
    const cidr = parseCidr(ipOrCidr)
    if (isCidrError(cidr)) throw invalidEntry(`${JSON.stringify(ipOrCidr)} is not a valid address or CIDR`)
    const removed = await this.config.store.remove(cidr.text)
    await this.reload()
    if (removed) this.config.logger.info(`${PKG}: runtime denylist entry removed`, { ip: cidr.text })
    return removed
  }

  async list(): Promise<DenylistEntry[]> {
    const entries = await this.config.store.list()
    return entries.sort((a, b) => a.addedAt.getTime() - b.addedAt.getTime())
  }

  async shutdown(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.unsubscribe()
    if (this.expiryTimer) clearTimeout(this.expiryTimer)
    this.expiryTimer = undefined
    for (const w of this.waiters) w.resolve()
    this.waiters = []
    if (this.config.ownStore) await this.config.store.shutdown()
  }
}

/**
 * IP allow and deny lists for Express. The client address is `req.ip`, as Express's `trust proxy`
 * setting resolves it; X-Forwarded-For is never read here. Deny rules (static and runtime) always
 * win; an enabled allowlist refuses every address it does not match. A refusal is a 403 in the
 * provider's error shape that names no rule, and a `security_violation` event that does.
 */
export function ipFilter(options: IpFilterOptions = {}): IpFilterMiddleware {
  const config = resolveIpFilterConfig(options)
  const engine = new IpFilterEngine(config)
  const { logger, onEvent } = config
  let warnedTrustProxy = false

  const refuse = (req: Request, res: Response, status: 403 | 503, locals: IpFilterLocals): void => {
    const route = resolveProviderRoute(req.path)
    const details: Record<string, unknown> = { address: locals.ip, method: req.method, path: req.path }
    for (const key of ['list', 'rule', 'entry', 'reason'] as const) if (locals[key] !== undefined) details[key] = locals[key]
    if (locals.matchedAs !== undefined) details.matched_as = locals.matchedAs
    const g = gatehouseLocals(res)
    emitSecurityEvent(
      onEvent,
      {
        event_type: 'security_violation',
        ...(route ? { provider: route.provider } : {}),
        ...(g.clientKeyId ? { user_id: g.clientKeyId } : {}),
        ip: locals.ip,
        ...(g.requestId ? { request_id: g.requestId } : {}),
        result: locals.result,
        details,
      },
      (err) => logger.error(`${PKG}: the onEvent handler threw`, { error: err instanceof Error ? err.message : String(err) }),
    )
    if (status === 503) {
      sendProviderError(res, detectProvider(req), 503, { message: 'Service temporarily unavailable.' }, { 'Retry-After': 5 })
    } else {
      sendProviderError(res, detectProvider(req), 403, { message: 'Access denied.' })
    }
  }

  const handle = (req: Request, res: Response, next: NextFunction): void => {
    try {
      if (!warnedTrustProxy && req.app?.get('trust proxy') === true) {
        warnedTrustProxy = true
        logger.warn(
          `${PKG}: the app trusts every proxy hop ('trust proxy' is true), so clients can choose their own address with X-Forwarded-For; set a hop count or the proxies' CIDRs`,
        )
      }
      // req.ip as Express resolves it, read once per request for every layer (core's requestAddress).
      const raw = requestAddress(req)
      const addr = parseClientAddress(raw)
      const ip = addr ? addressText(addr) : String(raw ?? 'unknown').slice(0, 100)
      const g = gatehouseLocals(res)
      const storeOk = engine.storeHealthy()
      if (!storeOk) {
        engine.maybeRecover()
        if (config.onStoreError === 'deny') {
          const locals: IpFilterLocals = { ip, allowed: false, result: 'store_unavailable' }
          g.ipFilter = locals
          refuse(req, res, 503, locals)
          return
        }
        engine.logDegraded()
      }
      const d = addr ? engine.checkAddress(addr) : INVALID
      const locals: IpFilterLocals = { ip, ...d }
      if (!storeOk) locals.degraded = true
      g.ipFilter = locals
      if (d.allowed) {
        next()
        return
      }
      refuse(req, res, 403, locals)
    } catch (err) {
      next(err)
    }
  }

  const middleware = function ipFilterMiddleware(req: Request, res: Response, next: NextFunction): void {
    if (engine.loaded) {
      handle(req, res, next)
      return
    }
    engine.initial.then(() => handle(req, res, next), next)
  } as IpFilterMiddleware

  middleware.add = (ipOrCidr, opts) => engine.add(ipOrCidr, opts)
  middleware.remove = (ipOrCidr) => engine.remove(ipOrCidr)
  middleware.list = () => engine.list()
  middleware.check = (ip) => engine.check(ip)
  middleware.ready = () => engine.initial
  middleware.isStoreHealthy = () => engine.storeHealthy()
  middleware.shutdown = () => engine.shutdown()
  return middleware
}
