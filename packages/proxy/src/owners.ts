import type { NextFunction, Request, Response } from 'express'
import { clientIp, emitSecurityEvent, gatehouseLocals, sendProviderError } from '@gatehouse/core'
import { ProxyErrorCodes } from './errors'
import type { ProxyConfig } from './options'

/**
 * Which tenant (client key) made each provider object the proxy saw made: OpenAI response ids.
 * The provider keeps responses per account for 30 days, and one tenant's id in another tenant's
 * `previous_response_id` would continue the first tenant's conversation, its prompts and outputs
 * included. An id is hard to guess, but it is a secret only until it is logged or shown once; the
 * proxy therefore lets a tenant use only the objects it made.
 */
export interface ObjectOwners {
  /** Remember that `tenant` made object `id`. Never throws; a failure is the store's to report. */
  record(id: string, tenant: string): void
  /** The tenant that made `id`, undefined when unknown. Rejects when the store cannot be read. */
  owner(id: string): Promise<string | undefined> | string | undefined
}

/** How long the provider keeps a response (OpenAI: 30 days). */
export const OBJECT_TTL_SECONDS = 30 * 24 * 3600

/**
 * Owners in this process: at most `max` objects, the oldest forgotten first, each for
 * OBJECT_TTL_SECONDS. A gateway restarted forgets them: a tenant then cannot continue a response
 * made before (refused as unknown), which is the safe way to be wrong. Cluster mode keeps them in
 * Redis (`redisObjectOwners`).
 */
export function memoryObjectOwners(options: { max?: number; clock?: () => number } = {}): ObjectOwners {
  const max = options.max ?? 100_000
  const clock = options.clock ?? Date.now
  // Insertion order is age order: the first key is the oldest.
  const owners = new Map<string, { tenant: string; until: number }>()
  return {
    record(id, tenant) {
      owners.delete(id)
      owners.set(id, { tenant, until: clock() + OBJECT_TTL_SECONDS * 1000 })
      if (owners.size > max) owners.delete(owners.keys().next().value!)
    },
    owner(id) {
      const o = owners.get(id)
      if (!o) return undefined
      if (o.until <= clock()) {
        owners.delete(id)
        return undefined
      }
      return o.tenant
    },
  }
}

/** The commands the Redis owners need of a client (an ioredis client fits). */
export interface ObjectOwnersRedisClient {
  get(key: string): Promise<string | null>
  set(key: string, value: string, ex: 'EX', seconds: number): Promise<unknown>
}

/**
 * Owners in Redis (`<prefix>owner:<id>`, expiring with the object), shared by every gateway of a
 * cluster: a response made through one is continued through any, by its tenant only. A write that
 * fails goes to `onError` (the object then counts as unknown: refused, never given away).
 */
export function redisObjectOwners(client: ObjectOwnersRedisClient, prefix: string, onError: (err: unknown) => void = () => undefined): ObjectOwners {
  const key = (id: string): string => `${prefix}owner:${id}`
  return {
    record(id, tenant) {
      client.set(key(id), tenant, 'EX', OBJECT_TTL_SECONDS).catch(onError)
    },
    async owner(id) {
      return (await client.get(key(id))) ?? undefined
    },
  }
}

/** A provider object a request refers to: its id, and the body member that named it (none: the path). */
export interface ObjectReference {
  id: string
  param?: 'previous_response_id' | 'conversation'
}

const RESPONSE_PATH = /^\/v1\/responses\/([^/?]+)/
const OBJECT_ID = /^[A-Za-z0-9_-]{1,256}$/

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v)

/**
 * The provider object a request to `endpoint` refers to, if any: a stored response by path
 * (retrieve, input items, cancel, delete) or by `previous_response_id`, or a conversation (which
 * the gateway never sees made: never the tenant's). `body` is the bytes to send, read only when the
 * parsed body is not at hand and the bytes name one of the members.
 */
export function referencedObject(endpoint: string | undefined, req: Request, upstreamPath: string, body: Buffer | undefined): ObjectReference | undefined {
  if (endpoint === undefined || !endpoint.startsWith('openai.responses')) return undefined
  if (endpoint !== 'openai.responses') {
    const m = RESPONSE_PATH.exec(upstreamPath)
    return m ? { id: decodeURIComponent(m[1]!) } : undefined
  }
  let o: unknown = req.body
  if (!isObject(o)) {
    if (!body || (body.indexOf('"previous_response_id"') === -1 && body.indexOf('"conversation"') === -1)) return undefined
    try {
      o = JSON.parse(body.toString('utf8'))
    } catch {
      return undefined
    }
    if (!isObject(o)) return undefined
  }
  if (typeof o.previous_response_id === 'string') return { id: o.previous_response_id, param: 'previous_response_id' }
  const conversation = isObject(o.conversation) ? o.conversation.id : o.conversation
  if (typeof conversation === 'string') return { id: conversation, param: 'conversation' }
  return undefined
}

/** Whether an id can be an object's at all (a malformed one is never anybody's). */
export const isObjectId = (id: string): boolean => OBJECT_ID.test(id)

/** `"id":"resp_…"`: a response's own id (its output items' ids have other prefixes). */
const MADE_ID = /"id"\s*:\s*"(resp_[A-Za-z0-9_-]{1,200})"/
/** How much of an answer is searched for the id: it comes first (JSON) or in the first event (SSE). */
const SEARCH_BYTES = 16 * 1024

/** Finds the id of the response an answer made, from its first bytes, JSON or SSE. */
export class MadeObjectWatch {
  private text = ''
  private done = false

  constructor(
    private readonly owners: ObjectOwners,
    private readonly tenant: string,
  ) {}

  push(chunk: Buffer): void {
    if (this.done) return
    this.text += chunk.toString('latin1', 0, Math.min(chunk.length, SEARCH_BYTES - this.text.length))
    const m = MADE_ID.exec(this.text)
    if (m) {
      this.done = true
      this.owners.record(m[1]!, this.tenant)
    } else if (this.text.length >= SEARCH_BYTES) this.done = true
  }
}

/**
 * Runs `go` when the request refers to no provider object, or only to one its client key made;
 * otherwise answers 404 in OpenAI's shape (as OpenAI answers an id it does not have), with a
 * `security_violation` event, and never forwards it. Without a client key or owners, `go` at once.
 * When the owners cannot be read: 503, never forwarded.
 */
export function checkObjectOwner(config: ProxyConfig, req: Request, res: Response, next: NextFunction, upstreamPath: string, go: () => void): void {
  const owners = config.objectOwners
  const locals = gatehouseLocals(res)
  const tenant = locals.clientKeyId
  if (!owners || tenant === undefined) return go()
  const ref = referencedObject(locals.endpoint, req, upstreamPath, config.body?.(req, res))
  if (!ref) return go()
  const refuse = (): void => {
    emitSecurityEvent(config.onEvent, {
      event_type: 'security_violation',
      provider: 'openai',
      ip: clientIp(req),
      ...(locals.requestId !== undefined ? { request_id: locals.requestId } : {}),
      user_id: tenant,
      result: 'object_denied',
      details: { code: ProxyErrorCodes.GH_PROXY_OBJECT_DENIED, endpoint: locals.endpoint ?? 'unknown', param: ref.param ?? 'path' },
    })
    const named = isObjectId(ref.id) ? ` with id '${ref.id}'` : ''
    sendProviderError(res, 'openai', 404, {
      message: ref.param === 'conversation' ? `Conversation${named} not found.` : ref.param ? `Previous response${named} not found.` : `Response${named} not found.`,
      param: ref.param ?? null,
      code: ref.param === 'previous_response_id' ? 'previous_response_not_found' : 'not_found',
      type: 'invalid_request_error',
    })
  }
  const decide = (owner: string | undefined): void => {
    try {
      if (owner === tenant && isObjectId(ref.id)) go()
      else refuse()
    } catch (err) {
      next(err)
    }
  }
  const unavailable = (err: unknown): void => {
    config.logger.error('@gatehouse/proxy: the object owners cannot be read', { code: ProxyErrorCodes.GH_PROXY_OWNERS_UNAVAILABLE, error: config.masker.text(String(err)) })
    sendProviderError(res, 'openai', 503, { message: 'The gateway cannot check this response id right now; try again shortly' })
  }
  let got: ReturnType<ObjectOwners['owner']>
  try {
    got = owners.owner(ref.id)
  } catch (err) {
    return unavailable(err)
  }
  if (got instanceof Promise) got.then(decide, unavailable)
  else decide(got)
}
