import { timingSafeEqual } from 'node:crypto'
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import {
  cidrMatcher,
  createRepeatFilter,
  DOCUMENTED_CLIENT_KEYS,
  detectProvider,
  emitSecurityEvent,
  gatehouseLocals,
  maskSecrets,
  clientIp,
  resolveProviderRoute,
  sendProviderError,
  type SecurityEventInput,
} from '@gatehouse/core'
import { keyIdFromHash } from './keys'
import { jwtFailureReason, looksLikeJwt } from './jwt'
import type { ClientKeyRecord } from './store'
import { resolveClientAuthConfig, type ClientAuthOptions } from './options'

declare module '@gatehouse/core' {
  interface GatehouseLocals {
    clientAuth?: { keyId: string; name: string }
  }
}

const CREDENTIAL_HEADERS = ['authorization', 'x-api-key', 'x-goog-api-key'] as const

/**
 * The last key a kept-alive connection presented and its hash under the store's salt. A client
 * sends the same key on every request of a connection, and the hash is a pure function of key and
 * salt, so it is worked out once per connection instead of once per request. The record is still
 * looked up on every request (revocation, expiry and the key file's changes apply at once), and the
 * presented key is compared with the remembered one in constant time, since a proxy in front may
 * carry several clients' requests over one connection. Kept under a symbol of each middleware, so
 * two middlewares with different stores never share a hash.
 */
interface ConnectionKey {
  key: Buffer
  hash: string
}

function connectionHasher(hash: (key: string) => string): (req: Request, key: string) => string {
  const slot = Symbol('gatehouse.client-auth.connection-key')
  return (req, key) => {
    const socket = req.socket as (typeof req.socket & { [slot]?: ConnectionKey }) | undefined
    const presented = Buffer.from(key, 'utf8')
    const last = socket?.[slot]
    if (last && last.key.length === presented.length && timingSafeEqual(last.key, presented)) return last.hash
    const h = hash(key)
    if (socket) socket[slot] = { key: presented, hash: h }
    return h
  }
}

const MISSING = 'Missing API key: send a Gatehouse client key as Authorization: Bearer, x-api-key or x-goog-api-key'
const INVALID = 'Invalid API key'

/** The credential the client presented, from the first header that carries one. */
function presentedKey(req: Request): { key: string; header: string } | 'conflict' | undefined {
  const found: { key: string; header: string }[] = []
  const auth = req.headers.authorization
  if (auth !== undefined) {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(auth)
    found.push({ key: m ? m[1]! : auth, header: 'authorization' })
  }
  for (const h of ['x-api-key', 'x-goog-api-key'] as const) {
    const v = req.headers[h]
    if (typeof v === 'string') found.push({ key: v.trim(), header: h })
  }
  if (found.length === 0) return undefined
  if (found.some((f) => f.key !== found[0]!.key)) return 'conflict'
  return found[0]
}

function refusedQueryParam(url: string, refused: ReadonlySet<string>): string | undefined {
  const q = url.indexOf('?')
  if (q === -1) return undefined
  for (const name of new URLSearchParams(url.slice(q + 1)).keys()) {
    if (refused.has(name.toLowerCase())) return name
  }
  return undefined
}

/**
 * Client API key authentication. Accepts a Gatehouse client key from `Authorization: Bearer`,
 * `x-api-key` or `x-goog-api-key`; refuses keys in the query string (400); answers 401 with
 * `WWW-Authenticate: Bearer` in the provider's own error shape; treats documented and configured
 * decoy keys as honeytokens.
 */
/** Each key's networks compiled once (records are frozen, so the list object identifies them). */
const matchers = new WeakMap<readonly string[], (ip: string | undefined) => boolean>()
function networkMatcher(networks: readonly string[]): (ip: string | undefined) => boolean {
  let m = matchers.get(networks)
  if (!m) matchers.set(networks, (m = cidrMatcher(networks)))
  return m
}

export function clientAuth(options: ClientAuthOptions): RequestHandler {
  const config = resolveClientAuthConfig(options)
  const successDue = createRepeatFilter(config.successEventInterval)
  const hashOnConnection = connectionHasher((key) => config.store.hash(key))
  const honeyHashes = new Set([...DOCUMENTED_CLIENT_KEYS, ...config.honeytokens].map((k) => config.store.hash(k)))

  const event = (req: Request, res: Response, input: Omit<SecurityEventInput, 'ip' | 'request_id'>): void => {
    const route = resolveProviderRoute(req.path)
    emitSecurityEvent(
      config.onEvent,
      {
        ...(route ? { provider: route.provider } : {}),
        ...input,
        ip: clientIp(req),
        ...(gatehouseLocals(res).requestId ? { request_id: gatehouseLocals(res).requestId! } : {}),
      },
      (err) => config.logger?.error('@gatehouse/client-auth: onEvent handler threw', { error: String(err) }),
    )
  }

  const unauthorized = (req: Request, res: Response, message: string): void =>
    sendProviderError(res, detectProvider(req), 401, { message }, { 'WWW-Authenticate': 'Bearer' })

  /** An authenticated caller (a key's record, or a verified token's identity): its scope, then on. */
  const admit = (
    req: Request,
    res: Response,
    next: NextFunction,
    who: Pick<ClientKeyRecord, 'id' | 'name' | 'providers' | 'endpoints' | 'models' | 'limits' | 'objects'>,
  ): void => {
    if (who.providers) {
      const route = resolveProviderRoute(req.path, req.headers)
      if (!route || !who.providers.includes(route.provider)) {
        event(req, res, {
          event_type: 'auth_failure',
          user_id: who.id,
          result: 'provider_not_allowed',
          details: { allowed: who.providers },
        })
        sendProviderError(res, detectProvider(req), 403, { message: 'This API key may not call this provider' })
        return
      }
    }
    const locals = gatehouseLocals(res)
    locals.clientKeyId = who.id
    locals.clientAuth = { keyId: who.id, name: who.name }
    if (who.endpoints) locals.clientKeyEndpoints = who.endpoints
    if (who.models) locals.clientKeyModels = who.models
    if (who.limits) locals.clientKeyLimits = who.limits
    if (who.objects) locals.clientKeyObjects = who.objects
    if (config.stripCredentials) for (const h of CREDENTIAL_HEADERS) delete req.headers[h]
    if (config.emitSuccess && successDue(`${who.id}|${clientIp(req)}`)) {
      event(req, res, { event_type: 'auth_success', user_id: who.id, result: 'ok' })
    }
    next()
  }

  /** A JWT from the configured issuer: verified (asynchronously: its keys may need fetching), then admitted as `jwt:<sub>`. */
  const admitJwt = (req: Request, res: Response, next: NextFunction, token: string, verify: NonNullable<typeof config.jwt>): void => {
    verify(token).then(
      (id) => {
        if (res.headersSent || res.destroyed) return
        const who = `jwt:${id.subject}`
        admit(req, res, next, { id: who, name: id.subject, ...(id.providers ? { providers: id.providers } : {}), ...(id.endpoints ? { endpoints: id.endpoints } : {}), ...(id.models ? { models: id.models } : {}), ...(id.limits ? { limits: id.limits } : {}), ...(id.objects ? { objects: id.objects } : {}) })
      },
      (err: unknown) => {
        if (res.headersSent || res.destroyed) return
        event(req, res, { event_type: 'auth_failure', result: 'invalid_jwt', details: { reason: jwtFailureReason(err) } })
        unauthorized(req, res, INVALID)
      },
    )
  }

  return function clientAuthMiddleware(req, res, next) {
    const param = refusedQueryParam(req.originalUrl ?? req.url, config.refusedQueryParams)
    if (param !== undefined) {
      event(req, res, {
        event_type: 'security_violation',
        result: 'key_in_query_string',
        details: { reason: 'credential in query string', param, path: maskSecrets(req.originalUrl ?? req.url) },
      })
      sendProviderError(res, detectProvider(req), 400, {
        message: `API keys are not accepted in the query string (parameter "${param}"); send the key in a header`,
        param,
      })
      return
    }

    const presented = presentedKey(req)
    if (presented === undefined) {
      event(req, res, { event_type: 'auth_failure', result: 'missing_key', details: { reason: 'no key presented' } })
      unauthorized(req, res, MISSING)
      return
    }
    if (presented === 'conflict') {
      event(req, res, { event_type: 'auth_failure', result: 'conflicting_keys', details: { reason: 'different keys in several headers' } })
      unauthorized(req, res, INVALID)
      return
    }

    if (config.jwt && looksLikeJwt(presented.key)) {
      admitJwt(req, res, next, presented.key, config.jwt)
      return
    }

    const hash = hashOnConnection(req, presented.key)
    const presentedId = keyIdFromHash(hash)
    if (honeyHashes.has(hash)) {
      event(req, res, {
        event_type: 'security_violation',
        user_id: presentedId,
        result: 'honeytoken',
        details: { reason: 'a decoy key was presented', header: presented.header },
      })
      try {
        config.onHoneytoken?.({ ip: clientIp(req), req })
      } catch (err) {
        config.logger?.error('@gatehouse/client-auth: onHoneytoken handler threw', { error: String(err) })
      }
      unauthorized(req, res, INVALID)
      return
    }

    const record = config.store.verifyHash ? config.store.verifyHash(hash) : config.store.verify(presented.key)
    let failure: string | undefined
    if (!record) failure = 'invalid_key'
    else if (record.revoked_at) failure = 'revoked_key'
    else if (record.expires_at && Date.parse(record.expires_at) <= Date.now()) failure = 'expired_key'
    // A key bound to networks is refused elsewhere exactly as an unknown key is: the caller learns
    // nothing of its scope; the event says why.
    else if (record.networks && !networkMatcher(record.networks)(clientIp(req))) failure = 'network_not_allowed'
    if (failure || !record) {
      event(req, res, { event_type: 'auth_failure', user_id: presentedId, result: failure ?? 'invalid_key', details: { header: presented.header } })
      unauthorized(req, res, INVALID)
      return
    }

    admit(req, res, next, record)
  }
}
