import type { NextFunction, Request, Response } from 'express'
import { clientIp, emitSecurityEvent, gatehouseLocals, isProviderObjectId, matchEndpoint, sendProviderError, type GatehouseLocals, type ProviderName } from '@gatehouse/core'
import { ProxyErrorCodes } from './errors'
import type { ProxyConfig } from './options'
import { bodyObject, isObject } from './json-body'
import type { ObjectOwners } from './owners'
import { batchInputMark } from './made'

/**
 * Provider objects by id: what a request refers to (what an answer made: made.ts). Every tenant of
 * a gateway shares the provider account, and the provider keeps these objects per account:
 *
 * - made through the gateway, recorded as their client key's, usable by that key only: OpenAI
 *   responses (`previous_response_id`, `/v1/responses/:id`), stored chat completions
 *   (`/v1/chat/completions/:id`), uploaded files and the files a batch wrote (`file_id`,
 *   `file_ids`, `input_file_id`, `training_file`, `validation_file` anywhere in a body,
 *   `/v1/files/:id`), batches (`/v1/batches/:id`, `/v1/messages/batches/:id`), Anthropic
 *   code-execution containers (`container`);
 * - never made through the gateway (their create endpoints are not in the registry), so never a
 *   client key's: OpenAI conversations, vector stores (`vector_store_ids`) and containers (a code
 *   interpreter's `container` id), OpenAI fine-tuned models (a body's `model` of `ft:…`,
 *   `DELETE /v1/models/:model`), Gemini cached contents (`cachedContent`) and files (a
 *   `generativelanguage.googleapis.com` file URI, `/v1beta/files/:id`; id `files/…`).
 *
 * The operator may open objects made outside the gateway: to every key (a provider's
 * `sharedObjects`) or to one key (its scope's `objects`, `res.locals.gatehouse.clientKeyObjects`).
 * A grant is of an id, whatever member names it. A reference to any other object the key did not
 * make is answered 404 in the provider's shape, as the provider answers an id it does not have, and
 * never forwarded. The list endpoints (files, batches, stored completions) are not checked: they
 * list the whole account, as the endpoint table says.
 */

export type ObjectKind = 'response' | 'chat_completion' | 'conversation' | 'file' | 'vector_store' | 'cached_content' | 'container' | 'batch' | 'model'

/** A provider object a request refers to: its id, its kind, and the member that named it (`path`: the URL). */
export interface ObjectReference {
  id: string
  kind: ObjectKind
  param: string
}

/**
 * Kinds the gateway never sees made: a reference to one is never a client key's. A fine-tuned model
 * (OpenAI `ft:…`) is made by a job the gateway never sees finish, and may hold its maker's training
 * data: only the operator's grants open one.
 */
const NEVER_MADE: ReadonlySet<ObjectKind> = new Set(['conversation', 'vector_store', 'cached_content', 'model'])

/** Whether the gateway ever sees an object of this kind made for this provider (Gemini's files are uploaded elsewhere). */
const neverMade = (provider: ProviderName, kind: ObjectKind): boolean => NEVER_MADE.has(kind) || (provider === 'gemini' && kind === 'file')

/** Endpoints whose path names one object (`:id`), and its kind. */
const PATH_OBJECTS: ReadonlyMap<string, ObjectKind> = new Map<string, ObjectKind>([
  ...['get', 'input_items', 'cancel', 'delete'].map((e): [string, ObjectKind] => [`openai.responses.${e}`, 'response']),
  ...['get', 'messages', 'delete'].map((e): [string, ObjectKind] => [`openai.chat.${e}`, 'chat_completion']),
  ...['openai', 'claude', 'gemini'].flatMap((p) => ['get', 'content', 'delete'].map((e): [string, ObjectKind] => [`${p}.files.${e}`, 'file'])),
  ...['get', 'cancel'].map((e): [string, ObjectKind] => [`openai.batches.${e}`, 'batch']),
  ...['get', 'results', 'cancel', 'delete'].map((e): [string, ObjectKind] => [`claude.batches.${e}`, 'batch']),
  ['openai.models.delete', 'model'],
])

/** Members naming a file by id: content parts, a code interpreter's files, a batch's input, a fine-tuning job's data. */
const FILE_MEMBERS: ReadonlySet<string> = new Set(['file_id', 'input_file_id', 'training_file', 'validation_file'])
/** A Gemini file as a URI: its resource name (`files/…`) is its id, as the files endpoints name it. */
const GEMINI_FILE_URI = /^https:\/\/generativelanguage\.googleapis\.com\/[^/]+\/(files\/[^/?#]+)/
/** Substrings a body holds when it may refer to an object: a body without any is not walked. */
const TRIGGERS = ['"ft:', '"file_id"', '"file_ids"', '"input_file_id"', '"training_file"', '"validation_file"', '"vector_store_ids"', '"previous_response_id"', '"conversation"', '"container"', '"cachedContent"', '"cached_content"', 'generativelanguage.googleapis.com'].map((t) => Buffer.from(t))
const MAX_DEPTH = 64
const MAX_REFERENCES = 64
/** A batch input file's lines together (each line is a request). */
const MAX_BATCH_REFERENCES = 1024

const idOf = (v: unknown): string | undefined => (typeof v === 'string' ? v : isObject(v) && typeof v.id === 'string' ? v.id : undefined)

/** What a walk found: the references, and whether the body held more than it checks (then it is refused). */
interface Found {
  refs: ObjectReference[]
  overflow: boolean
  max: number
}

/**
 * Every file member (FILE_MEMBERS, `file_ids`), `vector_store_ids` and `container` (an id, or an
 * object with one: Anthropic's, or an OpenAI tool's) in a body, and for Gemini every cached content
 * and file URI; depth-first. Past MAX_DEPTH levels or MAX_REFERENCES references it stops and says
 * so: what it did not look at must not pass unchecked.
 */
function walk(node: unknown, gemini: boolean, found: Found, depth = 0): void {
  if (found.overflow) return
  if (depth > MAX_DEPTH || found.refs.length > found.max) {
    found.overflow = true
    return
  }
  if (Array.isArray(node)) {
    for (const v of node) walk(v, gemini, found, depth + 1)
    return
  }
  if (!isObject(node)) return
  const out = found.refs
  for (const [k, v] of Object.entries(node)) {
    if (found.overflow) return
    if (FILE_MEMBERS.has(k) && typeof v === 'string') out.push({ id: v, kind: 'file', param: k })
    else if ((k === 'file_ids' || k === 'vector_store_ids') && Array.isArray(v)) {
      for (const id of v) if (typeof id === 'string') out.push({ id, kind: k === 'file_ids' ? 'file' : 'vector_store', param: k })
    } else if (!gemini && k === 'container' && idOf(v) !== undefined) out.push({ id: idOf(v)!, kind: 'container', param: k })
    else if (gemini && (k === 'cachedContent' || k === 'cached_content') && typeof v === 'string') out.push({ id: v, kind: 'cached_content', param: k })
    else if (gemini && (k === 'fileUri' || k === 'file_uri') && typeof v === 'string' && v.includes('generativelanguage.googleapis.com')) {
      out.push({ id: GEMINI_FILE_URI.exec(v)?.[1] ?? v, kind: 'file', param: k })
    } else walk(v, gemini, found, depth + 1)
  }
  if (out.length > found.max) found.overflow = true
}

/** The references of one parsed request body sent to `endpoint`, added to `found`. */
function bodyReferences(provider: ProviderName, endpoint: string, o: Record<string, unknown>, found: Found): void {
  if (provider === 'openai' && typeof o.model === 'string' && o.model.startsWith('ft:')) found.refs.push({ id: o.model, kind: 'model', param: 'model' })
  if (endpoint === 'openai.responses') {
    if (typeof o.previous_response_id === 'string') found.refs.push({ id: o.previous_response_id, kind: 'response', param: 'previous_response_id' })
    const conversation = idOf(o.conversation)
    if (conversation !== undefined) found.refs.push({ id: conversation, kind: 'conversation', param: 'conversation' })
  }
  walk(o, provider === 'gemini', found)
}

/** The object a path (the route's upstream path, without a query) names: its `:id` (a model's `:model`), decoded; a Gemini file as `files/…`. */
function pathObject(provider: ProviderName, method: string, upstreamPath: string, kind: ObjectKind): ObjectReference | undefined {
  const params = matchEndpoint(provider, method, upstreamPath)?.params
  const raw = kind === 'model' ? params?.model : params?.id
  if (raw === undefined) return undefined
  let id: string
  try {
    id = decodeURIComponent(raw)
  } catch {
    id = raw // malformed: no object's id, so nobody's
  }
  return { id: provider === 'gemini' ? `files/${id}` : id, kind, param: 'path' }
}

/**
 * The provider objects a request refers to (see above). `body` is the bytes to send; it is parsed
 * only when the parsed body is not at hand and the bytes hold one of the members. An OpenAI batch
 * input's lines (`batchInput`, read by request-guard) are walked as the requests they are.
 */
export function objectReferences(provider: ProviderName, endpoint: string | undefined, req: Request, upstreamPath: string, body: Buffer | undefined, batchInput?: GatehouseLocals['batchInput']): Found {
  const found: Found = { refs: [], overflow: false, max: batchInput !== undefined ? MAX_BATCH_REFERENCES : MAX_REFERENCES }
  if (endpoint === undefined) return found
  const inPath = PATH_OBJECTS.get(endpoint)
  if (inPath !== undefined) {
    const ref = pathObject(provider, req.method, upstreamPath, inPath)
    // A path the registry matched always has its id; should it not, nothing may pass unchecked.
    found.refs.push(ref ?? { id: '', kind: inPath, param: 'path' })
    return found
  }
  if (req.method !== 'POST') return found
  // The bytes of every line of a batch were read: only its lines can refer to anything.
  if (batchInput !== undefined) {
    for (const line of batchInput.requests) bodyReferences(provider, line.endpoint, line.body, found)
    return found
  }
  // The bytes, when known, say quickly that there is nothing to look for (most requests).
  if (body !== undefined && !TRIGGERS.some((t) => body.includes(t))) return found
  const o = bodyObject(req.body, body)
  if (o) bodyReferences(provider, endpoint, o, found)
  return found
}

const NAMES: Record<ObjectKind, string> = {
  response: 'Response',
  chat_completion: 'Chat completion',
  conversation: 'Conversation',
  file: 'File',
  vector_store: 'Vector store',
  cached_content: 'Cached content',
  container: 'Container',
  batch: 'Batch',
  model: 'Model',
}

/**
 * Runs `go` when the request refers to no provider object, or only to ones its client key made or
 * was granted (the provider's shared objects, the key's own grants); otherwise answers 404 in the
 * provider's shape with a `security_violation` event (`object_denied`), and never forwards it.
 * Without a client key or owners, `go` at once. When the owners cannot be read: 503, never forwarded.
 */
export function checkObjectOwners(config: ProxyConfig, provider: ProviderName, req: Request, res: Response, next: NextFunction, upstreamPath: string, go: () => void): void {
  const owners = config.objectOwners
  const locals = gatehouseLocals(res)
  const tenant = locals.clientKeyId
  if (!owners || tenant === undefined) return go()
  const shared = config.providers.get(provider)?.sharedObjects
  const granted = locals.clientKeyObjects
  // A batch's input must be a file its key uploaded as a checked batch input (request-guard read its
  // lines), granted or not: the provider runs every line later, where nothing can cap it.
  const batchInput = (ref: ObjectReference): boolean => locals.endpoint === 'openai.batches.create' && ref.param === 'input_file_id'
  const named = objectReferences(provider, locals.endpoint, req, upstreamPath, config.body?.(req, res), locals.batchInput)
  if (named.overflow) return refuseOverflow(config, provider, req, res)
  // Granted ids need no owner: they were never (or need not be) made through the gateway.
  const refs = named.refs.filter((ref) => batchInput(ref) || (shared?.has(ref.id) !== true && granted?.includes(ref.id) !== true))
  if (refs.length === 0) return go()
  const refuse = (ref: ObjectReference): void => {
    objectDenied(config, provider, req, res, ref, ProxyErrorCodes.GH_PROXY_OBJECT_DENIED)
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
  const ownerOf = (ref: ObjectReference): ReturnType<ObjectOwners['owner']> => (neverMade(provider, ref.kind) || !isProviderObjectId(ref.id) ? undefined : owners.owner(ref.id))
  let found: Array<ReturnType<ObjectOwners['owner']>>
  try {
    found = refs.map(ownerOf)
  } catch (err) {
    return unavailable(err)
  }
  const decide = (got: Array<string | undefined>): void => {
    try {
      const foreign = refs.find((_ref, i) => got[i] !== tenant)
      const input = refs.find(batchInput)
      if (foreign) refuse(foreign)
      else if (input) batchRun(owners, tenant, input.id).then((why) => (why === undefined ? go() : refuseBatch(config, provider, req, res, input, why)), unavailable).catch(next)
      else go()
    } catch (err) {
      next(err)
    }
  }
  if (found.some((f) => f instanceof Promise)) Promise.all(found).then(decide, unavailable)
  else decide(found as Array<string | undefined>)
}

/**
 * Whether a batch may run on input file `fileId` for `tenant` (undefined), or why not: the file was
 * not uploaded by it as a checked batch input, or a batch already ran on it (each upload is charged
 * its bound once, so it runs once).
 */
async function batchRun(owners: ObjectOwners, tenant: string, fileId: string): Promise<string | undefined> {
  const mark = batchInputMark(fileId)
  if ((await owners.owner(mark.input)) !== tenant) return 'was not uploaded through this gateway as a batch input (purpose "batch")'
  if (!(await owners.claim(mark.run, tenant))) return 'has already run a batch through this gateway: upload it again for another batch'
  return undefined
}

/** The `object_denied` event of a refused reference. */
function objectDenied(config: ProxyConfig, provider: ProviderName, req: Request, res: Response, ref: ObjectReference, code: string): void {
  const locals = gatehouseLocals(res)
  emitSecurityEvent(config.onEvent, {
    event_type: 'security_violation',
    provider,
    ip: clientIp(req),
    ...(locals.requestId !== undefined ? { request_id: locals.requestId } : {}),
    ...(locals.clientKeyId !== undefined ? { user_id: locals.clientKeyId } : {}),
    result: 'object_denied',
    details: { code, endpoint: locals.endpoint ?? 'unknown', kind: ref.kind, param: ref.param },
  })
}

function refuseBatch(config: ProxyConfig, provider: ProviderName, req: Request, res: Response, ref: ObjectReference, why: string): void {
  objectDenied(config, provider, req, res, ref, ProxyErrorCodes.GH_PROXY_BATCH_INPUT_DENIED)
  sendProviderError(res, provider, 400, { message: `File '${ref.id}' ${why}.`, param: ref.param, code: 'invalid_batch_input', type: 'invalid_request_error' })
}

function refuseOverflow(config: ProxyConfig, provider: ProviderName, req: Request, res: Response): void {
  objectDenied(config, provider, req, res, { id: '', kind: 'file', param: 'body' }, ProxyErrorCodes.GH_PROXY_OBJECT_DENIED)
  sendProviderError(res, provider, 400, {
    message: `This request refers to more provider objects than the gateway checks (${MAX_REFERENCES}, ${MAX_BATCH_REFERENCES} in a batch file), or names them deeper than ${MAX_DEPTH} levels`,
    code: 'too_many_references',
    type: 'invalid_request_error',
  })
}
