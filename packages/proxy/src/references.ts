import type { NextFunction, Request, Response } from 'express'
import { clientIp, emitSecurityEvent, gatehouseLocals, isProviderObjectId, sendProviderError, type ProviderName } from '@gatehouse/core'
import { ProxyErrorCodes } from './errors'
import type { ProxyConfig } from './options'
import { bodyObject, isObject } from './json-body'
import type { ObjectOwners } from './owners'

/**
 * Provider objects by id: what a request refers to, and what an answer made. Every tenant of a
 * gateway shares the provider account, and the provider keeps these objects per account:
 *
 * - made through the gateway, recorded as their client key's, usable by that key only: OpenAI
 *   responses (`previous_response_id`, `/v1/responses/:id`), uploaded files (`file_id`, `file_ids`
 *   anywhere in a body), Anthropic code-execution containers (`container`);
 * - never made through the gateway (their create endpoints are not in the registry), so never a
 *   client key's: OpenAI conversations, vector stores (`vector_store_ids`) and containers (a code
 *   interpreter's `container` id), Gemini cached contents (`cachedContent`) and uploaded files (a
 *   `generativelanguage.googleapis.com` file URI).
 *
 * The operator may open objects made outside the gateway: to every key (a provider's
 * `sharedObjects`) or to one key (its scope's `objects`, `res.locals.gatehouse.clientKeyObjects`).
 * A grant is of an id, whatever member names it. A reference to any other object the key did not
 * make is answered 404 in the provider's shape, as the provider answers an id it does not have, and
 * never forwarded.
 */

export type ObjectKind = 'response' | 'conversation' | 'file' | 'vector_store' | 'cached_content' | 'container'

/** A provider object a request refers to: its id, its kind, and the member that named it (`path`: the URL). */
export interface ObjectReference {
  id: string
  kind: ObjectKind
  param: string
}

/** Kinds the gateway never sees made: a reference to one is never a client key's. */
const NEVER_MADE: ReadonlySet<ObjectKind> = new Set(['conversation', 'vector_store', 'cached_content'])

const RESPONSE_PATH = /^\/v1\/responses\/([^/?]+)/
/** Substrings a body holds when it may refer to an object: a body without any is not walked. */
const TRIGGERS = ['"file_id"', '"file_ids"', '"vector_store_ids"', '"previous_response_id"', '"conversation"', '"container"', '"cachedContent"', '"cached_content"', 'generativelanguage.googleapis.com'].map((t) => Buffer.from(t))
const MAX_DEPTH = 64
const MAX_REFERENCES = 64

const idOf = (v: unknown): string | undefined => (typeof v === 'string' ? v : isObject(v) && typeof v.id === 'string' ? v.id : undefined)

/**
 * Every `file_id`, `file_ids`, `vector_store_ids` and `container` (an id, or an object with one:
 * Anthropic's, or an OpenAI tool's) in a body, and for Gemini every cached content and file URI;
 * depth-first, bounded.
 */
function walk(node: unknown, gemini: boolean, out: ObjectReference[], depth = 0): void {
  if (depth > MAX_DEPTH || out.length >= MAX_REFERENCES) return
  if (Array.isArray(node)) {
    for (const v of node) walk(v, gemini, out, depth + 1)
    return
  }
  if (!isObject(node)) return
  for (const [k, v] of Object.entries(node)) {
    if (k === 'file_id' && typeof v === 'string') out.push({ id: v, kind: 'file', param: k })
    else if ((k === 'file_ids' || k === 'vector_store_ids') && Array.isArray(v)) {
      for (const id of v) if (typeof id === 'string') out.push({ id, kind: k === 'file_ids' ? 'file' : 'vector_store', param: k })
    } else if (!gemini && k === 'container' && idOf(v) !== undefined) out.push({ id: idOf(v)!, kind: 'container', param: k })
    else if (gemini && (k === 'cachedContent' || k === 'cached_content') && typeof v === 'string') out.push({ id: v, kind: 'cached_content', param: k })
    else if (gemini && (k === 'fileUri' || k === 'file_uri') && typeof v === 'string' && v.includes('generativelanguage.googleapis.com')) out.push({ id: v, kind: 'file', param: k })
    else walk(v, gemini, out, depth + 1)
  }
}

/**
 * The provider objects a request refers to (see above). `body` is the bytes to send; it is parsed
 * only when the parsed body is not at hand and the bytes hold one of the members.
 */
export function objectReferences(endpoint: string | undefined, req: Request, upstreamPath: string, body: Buffer | undefined): ObjectReference[] {
  if (endpoint === undefined) return []
  if (endpoint.startsWith('openai.responses.')) {
    const m = RESPONSE_PATH.exec(upstreamPath)
    return m ? [{ id: decodeURIComponent(m[1]!), kind: 'response', param: 'path' }] : []
  }
  if (req.method !== 'POST') return []
  // The bytes, when known, say quickly that there is nothing to look for (most requests).
  if (body !== undefined && !TRIGGERS.some((t) => body.includes(t))) return []
  const o = bodyObject(req.body, body)
  if (!o) return []
  const out: ObjectReference[] = []
  if (endpoint === 'openai.responses') {
    if (typeof o.previous_response_id === 'string') out.push({ id: o.previous_response_id, kind: 'response', param: 'previous_response_id' })
    const conversation = idOf(o.conversation)
    if (conversation !== undefined) out.push({ id: conversation, kind: 'conversation', param: 'conversation' })
  }
  walk(o, endpoint.startsWith('gemini.'), out)
  return out
}

const NAMES: Record<ObjectKind, string> = {
  response: 'Response',
  conversation: 'Conversation',
  file: 'File',
  vector_store: 'Vector store',
  cached_content: 'Cached content',
  container: 'Container',
}

/**
 * Runs `go` when the request refers to no provider object, or only to ones its client key made or
 * was granted (the provider's shared objects, the key's own grants); otherwise answers 404 in the provider's shape with a `security_violation` event (`object_denied`),
 * and never forwards it. Without a client key or owners, `go` at once. When the owners cannot be
 * read: 503, never forwarded.
 */
export function checkObjectOwners(config: ProxyConfig, provider: ProviderName, req: Request, res: Response, next: NextFunction, upstreamPath: string, go: () => void): void {
  const owners = config.objectOwners
  const locals = gatehouseLocals(res)
  const tenant = locals.clientKeyId
  if (!owners || tenant === undefined) return go()
  const shared = config.providers.get(provider)?.sharedObjects
  const granted = locals.clientKeyObjects
  // Granted ids need no owner: they were never (or need not be) made through the gateway.
  const refs = objectReferences(locals.endpoint, req, upstreamPath, config.body?.(req, res)).filter(
    (ref) => shared?.has(ref.id) !== true && granted?.includes(ref.id) !== true,
  )
  if (refs.length === 0) return go()
  const refuse = (ref: ObjectReference): void => {
    emitSecurityEvent(config.onEvent, {
      event_type: 'security_violation',
      provider,
      ip: clientIp(req),
      ...(locals.requestId !== undefined ? { request_id: locals.requestId } : {}),
      user_id: tenant,
      result: 'object_denied',
      details: { code: ProxyErrorCodes.GH_PROXY_OBJECT_DENIED, endpoint: locals.endpoint ?? 'unknown', kind: ref.kind, param: ref.param },
    })
    const named = isProviderObjectId(ref.id) ? ` with id '${ref.id}'` : ''
    const previous = ref.param === 'previous_response_id'
    sendProviderError(res, provider, 404, {
      message: `${previous ? 'Previous response' : NAMES[ref.kind]}${named} not found.`,
      param: ref.param === 'path' ? null : ref.param,
      code: previous ? 'previous_response_not_found' : 'not_found',
      type: provider === 'openai' ? 'invalid_request_error' : 'not_found_error',
    })
  }
  const unavailable = (err: unknown): void => {
    config.logger.error('@gatehouse/proxy: the object owners cannot be read', { code: ProxyErrorCodes.GH_PROXY_OWNERS_UNAVAILABLE, error: config.masker.text(String(err)) })
    sendProviderError(res, provider, 503, { message: 'The gateway cannot check the objects this request refers to right now; try again shortly' })
  }
  const ownerOf = (ref: ObjectReference): ReturnType<ObjectOwners['owner']> => (NEVER_MADE.has(ref.kind) || !isProviderObjectId(ref.id) ? undefined : owners.owner(ref.id))
  let found: Array<ReturnType<ObjectOwners['owner']>>
  try {
    found = refs.map(ownerOf)
  } catch (err) {
    return unavailable(err)
  }
  const decide = (got: Array<string | undefined>): void => {
    try {
      const foreign = refs.find((_ref, i) => got[i] !== tenant)
      if (foreign) refuse(foreign)
      else go()
    } catch (err) {
      next(err)
    }
  }
  if (found.some((f) => f instanceof Promise)) Promise.all(found).then(decide, unavailable)
  else decide(found as Array<string | undefined>)
}

/** What an answer of an endpoint makes, and where its id is: the pattern, and how far to look. */
const MADE: ReadonlyMap<string, { pattern: RegExp; bytes: number; when?: string }> = new Map([
  // A response's own id comes first (JSON) or in the first event (SSE); its items' ids have other prefixes.
  ['openai.responses', { pattern: /"id"\s*:\s*"(resp_[A-Za-z0-9_-]{1,200})"/, bytes: 16 * 1024 }],
  ['openai.files.create', { pattern: /"id"\s*:\s*"(file-[A-Za-z0-9_-]{1,200})"/, bytes: 16 * 1024 }],
  ['claude.files.create', { pattern: /"id"\s*:\s*"(file_[A-Za-z0-9_-]{1,200})"/, bytes: 16 * 1024 }],
  // A container comes at the end of a message (JSON) or in its message_delta (SSE), and only for
  // requests with the code execution tool.
  ['claude.messages', { pattern: /"container"\s*:\s*\{\s*"id"\s*:\s*"([A-Za-z0-9_-]{1,200})"/, bytes: 8 * 1024 * 1024, when: 'code_execution' }],
])

/** Looks for the id of what an answer made, in its first `bytes`, across chunk boundaries; records it as the tenant's. */
export class MadeObjectWatch {
  private seen = 0
  private carry = ''
  private done = false

  private constructor(
    private readonly owners: ObjectOwners,
    private readonly tenant: string,
    private readonly pattern: RegExp,
    private readonly bytes: number,
  ) {}

  /** The watch for a request to `endpoint` (whose body is `body`), or undefined when its answer makes nothing. */
  static for(owners: ObjectOwners, tenant: string, endpoint: string | undefined, body: Buffer | undefined): MadeObjectWatch | undefined {
    const made = endpoint === undefined ? undefined : MADE.get(endpoint)
    if (!made || (made.when !== undefined && !body?.includes(made.when))) return undefined
    return new MadeObjectWatch(owners, tenant, made.pattern, made.bytes)
  }

  push(chunk: Buffer): void {
    if (this.done) return
    const take = Math.min(chunk.length, this.bytes - this.seen)
    this.seen += take
    const text = this.carry + chunk.toString('latin1', 0, take)
    const m = this.pattern.exec(text)
    if (m) {
      this.done = true
      this.owners.record(m[1]!, this.tenant)
      return
    }
    if (this.seen >= this.bytes) this.done = true
    // What may hold the start of a match cut by the chunk's end.
    this.carry = text.slice(-256)
  }
}
