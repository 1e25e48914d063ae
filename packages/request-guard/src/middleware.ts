import { isUtf8 } from 'node:buffer'
import type { IncomingHttpHeaders } from 'node:http'
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { ErrorObject } from 'ajv'
import {
  emitSecurityEvent,
  GatehouseError,
  gatehouseLocals,
  clientIp,
  sendProviderError,
  type ProviderErrorInfo,
} from '@gatehouse/core'
import { resolveRequestGuardConfig, type RequestGuardConfig, type RequestGuardOptions } from './options'
import { resolveEndpoint, type Endpoint } from './endpoints'
import { compileBodyValidators, type BodyValidators } from './schemas'
import { pathId, scanJson, walkValue, type PathSegment, type ScanFailure } from './scan'
import { formatField } from './fields'
import { CAP_KEYS, capFor, capInsertPath, choiceSites, findCapSites, outputUnits, requestedTokens, UNCAPPED_OUTPUT_TOKENS, type CapSite } from './caps'
import { RequestGuardErrorCodes, type RequestGuardErrorCode } from './errors'

/** What the guard leaves for the layers after it, in `res.locals.gatehouse.requestGuard`. */
export interface RequestGuardLocals {
  /** The exact bytes that were validated: what `forwardBody` writes upstream. */
  rawBody: Buffer
  /** The endpoint the body was checked as (`openai.chat`, `claude.messages`, …, or `generic`). */
  endpoint: string
  /** Whose caps applied. */
  provider: string
  /** True when an earlier body parser had consumed the stream and `rawBody` is re-serialized JSON. */
  reserialized: boolean
  /** Fields lowered to their cap (`onOverCap: 'clamp'`), as `generationConfig.maxOutputTokens`. */
  clamped: string[]
  /** Caps written into a request that set none (`insertCaps`), as `max_completion_tokens`. */
  inserted: string[]
  /** The largest max-token value the forwarded body asks for, when it sets one. */
  maxTokens?: number
  /** Set by `forwardBody` once the bytes are written, so a second call writes nothing. */
  forwarded?: boolean
}

declare module '@gatehouse/core' {
  interface GatehouseLocals {
    requestGuard?: RequestGuardLocals
  }
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH'])

interface Refusal {
  status: number
  code: RequestGuardErrorCode
  message: string
  field?: string
  /** OpenAI's machine-readable `code`; omitted means the default for the status. */
  openaiCode?: string | null
  limit?: number
}

interface Ctx {
  req: Request
  res: Response
  endpoint: Endpoint
  pathname: string
  /** The request stream has not been read to its end: close the connection after answering. */
  bodyUnread: boolean
}

const FAILURES: Record<
  Exclude<ScanFailure['kind'], 'syntax'>,
  (field: string, config: RequestGuardConfig) => Refusal
> = {
  depth: (field, c) => ({
    status: 400,
    code: 'GH_RG_TOO_DEEP',
    message: `${field || 'body'}: objects and arrays are nested deeper than ${c.maxDepth} levels`,
    field,
    limit: c.maxDepth,
  }),
  elements: (field, c) => ({
    status: 413,
    code: 'GH_RG_TOO_MANY_ELEMENTS',
    message: `${field || 'body'}: more than ${c.maxElements} entries`,
    field,
    openaiCode: 'array_above_max_length',
    limit: c.maxElements,
  }),
  forbidden_key: (field) => ({
    status: 400,
    code: 'GH_RG_FORBIDDEN_KEY',
    message: `${field}: this key is not allowed in a request body`,
    field,
  }),
  duplicate_key: (field) => ({
    status: 400,
    code: 'GH_RG_DUPLICATE_KEY',
    message: `${field}: the same key appears twice in one object`,
    field,
  }),
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean',
  array: 'an array',
  object: 'an object',
  null: 'null',
}

function valueAt(data: unknown, path: readonly PathSegment[]): unknown {
  let node = data
  for (const seg of path) {
    if (node === null || typeof node !== 'object') return undefined
    node = (node as Record<string | number, unknown>)[seg]
  }
  return node
}

function ajvPath(instancePath: string): PathSegment[] {
  if (!instancePath) return []
  return instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p))
}

/** Turn the one ajv error into a refusal that names the field, without quoting the body. */
function schemaRefusal(errors: readonly ErrorObject[], body: unknown): Refusal {
  const e = errors.find((x) => x.keyword !== 'if') ?? errors[0]!
  const path = ajvPath(e.instancePath)
  const p = e.params as Record<string, unknown>
  if (e.keyword === 'required') path.push(String(p.missingProperty))
  const field = formatField(path)
  const name = field || 'body'
  const value = valueAt(body, path)
  const isInt = typeof value === 'number' && Number.isInteger(value)
  let problem: string
  let openaiCode: string | null
  switch (e.keyword) {
    case 'required':
      problem = 'is required'
      openaiCode = 'missing_required_parameter'
      break
    case 'type': {
      const types = Array.isArray(p.type) ? (p.type as string[]) : [String(p.type)]
      problem = `must be ${types.map((t) => TYPE_NAMES[t] ?? t).join(' or ')}`
      openaiCode = 'invalid_type'
      break
    }
    case 'minimum':
      problem = `must be >= ${String(p.limit)}`
      openaiCode = isInt ? 'integer_below_min_value' : 'decimal_below_min_value'
      break
    case 'maximum':
      problem = `must be <= ${String(p.limit)}`
      openaiCode = isInt ? 'integer_above_max_value' : 'decimal_above_max_value'
      break
    case 'enum':
      problem = `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`
      openaiCode = 'invalid_value'
      break
    case 'const':
      problem = `must be ${JSON.stringify(p.allowedValue)}`
      openaiCode = 'invalid_value'
      break
    case 'minItems':
      problem = p.limit === 1 ? 'must not be empty' : `must have at least ${String(p.limit)} items`
      openaiCode = p.limit === 1 ? 'empty_array' : 'array_below_min_length'
      break
    case 'maxItems':
      problem = `must have at most ${String(p.limit)} items`
      openaiCode = 'array_above_max_length'
      break
    case 'minLength':
      problem = p.limit === 1 ? 'must not be empty' : `must have at least ${String(p.limit)} characters`
      openaiCode = 'string_below_min_length'
      break
    case 'pattern':
      problem = 'must be an integer'
      openaiCode = 'invalid_value'
      break
    default:
      problem = e.message ?? 'is invalid'
      openaiCode = 'invalid_value'
  }
  return { status: 400, code: 'GH_RG_INVALID_BODY', message: `${name}: ${problem}`, field, openaiCode }
}

function mediaTypeRefusal(headers: IncomingHttpHeaders): Refusal | undefined {
  const raw = headers['content-type']
  if (raw === 'application/json') return undefined // what nearly every client sends
  const [type = '', ...params] = (raw ?? '').split(';')
  const media = type.trim().toLowerCase()
  if (media !== 'application/json' && !/^application\/[a-z0-9.!#$&^_-]+\+json$/.test(media)) {
    return {
      status: 415,
      code: 'GH_RG_UNSUPPORTED_MEDIA_TYPE',
      message: raw
        ? 'Content-Type must be application/json'
        : 'Content-Type is required and must be application/json',
      openaiCode: 'unsupported_media_type',
    }
  }
  for (const param of params) {
    const [k = '', v = ''] = param.split('=')
    if (k.trim().toLowerCase() !== 'charset') continue
    const charset = v.trim().replace(/^"|"$/g, '').toLowerCase()
    if (charset !== 'utf-8' && charset !== 'utf8') {
      return {
        status: 415,
        code: 'GH_RG_UNSUPPORTED_MEDIA_TYPE',
        message: 'the JSON body must be UTF-8 (charset=utf-8)',
        openaiCode: 'unsupported_media_type',
      }
    }
  }
  return undefined
}

function encodingRefusal(headers: IncomingHttpHeaders): Refusal | undefined {
  if (headers['content-encoding'] === undefined && headers['transfer-encoding'] === undefined) return undefined
  const ce = (headers['content-encoding'] ?? '').trim().toLowerCase()
  const te = (headers['transfer-encoding'] ?? '').trim().toLowerCase()
  if ((ce && ce !== 'identity') || (te && te !== 'chunked')) {
    return {
      status: 415,
      code: 'GH_RG_UNSUPPORTED_ENCODING',
      message: 'compressed or encoded request bodies are not accepted; send plain JSON',
      openaiCode: 'unsupported_media_type',
    }
  }
  return undefined
}

const hasBody = (headers: IncomingHttpHeaders): boolean =>
  headers['transfer-encoding'] !== undefined ||
  (headers['content-length'] !== undefined && headers['content-length'] !== '0')

/** How much of a refused body is read and discarded before the connection is closed instead. */
const DISCARD_LIMIT = 64 * 1024 * 1024

/**
 * Read and discard the rest of a refused request's body, so that the connection stays readable
 * until the client has sent it; destroyed once more than DISCARD_LIMIT bytes arrive. False when
 * the declared length is already past the bound (the caller then closes the connection).
 */
function discardRest(req: Request): boolean {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (!(declared <= DISCARD_LIMIT)) return false
  let seen = 0
  req.on('data', (chunk: Buffer) => {
    seen += chunk.length
    if (seen > DISCARD_LIMIT) req.socket.destroy()
  })
  req.resume()
  return true
}

const tooLarge = (limit: number): Refusal => ({
  status: 413,
  code: 'GH_RG_BODY_TOO_LARGE',
  message: `the request body is larger than ${limit} bytes`,
  limit,
})

const malformed = (message: string): Refusal => ({
  status: 400,
  code: 'GH_RG_MALFORMED_JSON',
  message,
  openaiCode: null,
})

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v)

/**
 * Validate LLM provider request bodies before they are proxied: body size, content type, JSON
 * well-formedness and structure, the provider's request schema, and max-token caps. It reads the
 * raw body itself (mount it before any body parser), keeps the exact validated bytes for
 * `forwardBody`, and puts the parsed object on `req.body`.
 */
/**
 * The path of a request target without its query; an absolute-form target (`POST http://x/v1/…`)
 * is read for its path, so it is checked exactly like the origin form the router sees.
 */
function originPath(target: string): string {
  let path = target.split('?')[0] ?? '/'
  if (path.charCodeAt(0) !== 0x2f) {
    try {
      path = new URL(path).pathname
    } catch {
      path = '/'
    }
  }
  return path
}

export function requestGuard(options: RequestGuardOptions = {}): RequestHandler {
  const config = resolveRequestGuardConfig(options)
  const validators: BodyValidators = config.validateSchema ? compileBodyValidators() : new Map()

  /** A logger that throws must not turn a refusal into a crash. */
  function log(level: 'error' | 'debug', message: string, meta: Record<string, unknown>): void {
    try {
      config.logger[level](message, meta)
    } catch {
      // Nothing sensible is left to report to.
    }
  }

  function emit(ctx: Ctx, result: string, details: Record<string, unknown>): void {
    const { req, res, endpoint } = ctx
    const locals = gatehouseLocals(res)
    emitSecurityEvent(
      config.onEvent,
      {
        event_type: 'security_violation',
        provider: endpoint.provider,
        ...(locals.clientKeyId ? { user_id: locals.clientKeyId } : {}),
        ip: clientIp(req),
        ...(locals.requestId ? { request_id: locals.requestId } : {}),
        result,
        details: { ...details, method: req.method, path: ctx.pathname, endpoint: endpoint.kind },
      },
      (err) => log('error', '@gatehouse/request-guard: onEvent handler threw', { error: String(err) }),
    )
  }

  function refuse(ctx: Ctx, r: Refusal): void {
    emit(ctx, r.code.slice('GH_RG_'.length).toLowerCase(), {
      code: r.code,
      status: r.status,
      ...(r.field ? { field: r.field } : {}),
      ...(r.limit !== undefined ? { limit: r.limit } : {}),
    })
    log('debug', '@gatehouse/request-guard: request refused', {
      code: r.code,
      status: r.status,
      path: ctx.pathname,
      ...(r.field ? { field: r.field } : {}),
    })
    const info: ProviderErrorInfo = { message: r.message, param: r.field || null }
    if (r.openaiCode !== undefined) info.code = r.openaiCode
    // A client still uploading the refused body must get this answer, not a reset: closing a
    // socket with unread bytes makes the kernel send RST, which can discard the answer before
    // the client reads it. So the rest is read and thrown away (bounded); past the bound, or when
    // the declared length is past it, the connection is closed after the answer.
    const headers: Record<string, string> = ctx.bodyUnread && !discardRest(ctx.req) ? { Connection: 'close' } : {}
    sendProviderError(ctx.res, ctx.endpoint.dialect, r.status, info, headers)
  }

  /** Structure, schema and caps on a parsed body; returns the refusal or the clamp edits. */
  function check(
    ctx: Ctx,
    body: unknown,
  ): Refusal | Checked {
    if (!isPlainObject(body)) {
      return {
        status: 400,
        code: 'GH_RG_NOT_AN_OBJECT',
        message: 'the request body must be a JSON object',
        openaiCode: 'invalid_type',
      }
    }
    const validate = ctx.req.method === 'POST' ? validators.get(ctx.endpoint.kind) : undefined
    if (validate && !validate(body)) return schemaRefusal(validate.errors ?? [], body)

    const clamps: { path: PathSegment[]; cap: number }[] = []
    let maxTokens: number | undefined
    const sites = findCapSites(body, ctx.endpoint)
    /** Each cap field's value once clamped (absent for null). */
    const effective = new Map<string, number>()
    for (const site of sites) {
      const field = formatField(site.path)
      const requested = requestedTokens(site.value)
      if (requested === null) continue
      if (requested === 'invalid') {
        return {
          status: 400,
          code: 'GH_RG_INVALID_BODY',
          message: `${field}: must be an integer`,
          field,
          openaiCode: 'invalid_type',
        }
      }
      const cap = capFor(config.providers[ctx.endpoint.provider], site.model)
      if (cap !== false && requested > cap) {
        if (config.onOverCap === 'reject') {
          const got = Number.isFinite(requested) ? ` (got ${requested})` : ''
          return {
            status: 400,
            code: 'GH_RG_MAX_TOKENS_EXCEEDED',
            message: `${field}: must be <= ${cap}${got}`,
            field,
            openaiCode: 'integer_above_max_value',
            limit: cap,
          }
        }
        clamps.push({ path: site.path, cap })
        maxTokens = Math.max(maxTokens ?? 0, cap)
        effective.set(pathId(site.path), cap)
      } else {
        maxTokens = Math.max(maxTokens ?? 0, requested)
        effective.set(pathId(site.path), Math.max(0, requested))
      }
    }
    // A background response runs after its request has been answered: its usage never passes the
    // gateway, so nothing could charge it. Refused unless the operator allows it.
    if (ctx.endpoint.kind === 'openai.responses' && body.background === true && !config.allowBackground) {
      return {
        status: 400,
        code: 'GH_RG_UNMETERED',
        message: 'background: background responses are not available through this gateway (their usage cannot be metered)',
        field: 'background',
        openaiCode: 'invalid_value',
      }
    }
    // Bound each request's output: a missing or null cap gets the configured one written in, and
    // the fields that multiply output (n, best_of, candidateCount) are held to maxChoices.
    const inserts: { path: PathSegment[]; cap: number }[] = []
    let outputTokens = 0
    for (const unit of outputUnits(body, ctx.endpoint)) {
      const within = (path: readonly PathSegment[]): boolean => unit.path.every((seg, i) => path[i] === seg)
      const own = sites.filter((site) => within(site.path) && site.path.length - unit.path.length <= 2)
      let output: number | undefined
      for (const site of own) {
        const v = effective.get(pathId(site.path))
        if (v !== undefined) output = Math.max(output ?? 0, v)
      }
      if (output === undefined) {
        const cap = capFor(config.providers[ctx.endpoint.provider], unit.model)
        if (cap !== false && config.insertCaps) {
          const nullSite = own.find((site) => site.value === null)
          inserts.push({ path: nullSite ? site(nullSite) : [...unit.path, ...capInsertPath(unit, ctx.endpoint.provider)], cap })
          output = cap
          maxTokens = Math.max(maxTokens ?? 0, cap)
        } else output = cap === false ? UNCAPPED_OUTPUT_TOKENS : Math.max(cap, UNCAPPED_OUTPUT_TOKENS)
      }
      let choices = 1
      for (const c of choiceSites(unit)) {
        const path = [...unit.path, ...c.path]
        const field = formatField(path)
        if (c.value === null) continue
        const n = requestedTokens(c.value)
        if (n === 'invalid' || n === null || n < 1) {
          return { status: 400, code: 'GH_RG_INVALID_BODY', message: `${field}: must be a positive integer`, field, openaiCode: 'invalid_type' }
        }
        if (n > config.maxChoices) {
          if (config.onOverCap === 'reject') {
            return {
              status: 400,
              code: 'GH_RG_TOO_MANY_CHOICES',
              message: `${field}: must be <= ${config.maxChoices} (got ${n})`,
              field,
              openaiCode: 'integer_above_max_value',
              limit: config.maxChoices,
            }
          }
          clamps.push({ path, cap: config.maxChoices })
          choices = Math.max(choices, config.maxChoices)
        } else choices = Math.max(choices, n)
      }
      outputTokens += output * choices
    }
    return { clamps, inserts, maxTokens, outputTokens }
  }

  function accept(
    ctx: Ctx,
    next: NextFunction,
    body: Record<string, unknown>,
    rawBody: Buffer,
    reserialized: boolean,
    clamped: PathSegment[][],
    result: Checked,
  ): void {
    const { req, res, endpoint } = ctx
    const clampedFields = clamped.map((p) => formatField(p))
    if (clampedFields.length > 0)
      emit(ctx, 'max_tokens_clamped', { code: 'GH_RG_MAX_TOKENS_EXCEEDED', fields: clampedFields })
    const locals = gatehouseLocals(res)
    locals.requestGuard = {
      rawBody,
      endpoint: endpoint.kind,
      provider: endpoint.provider,
      reserialized,
      clamped: clampedFields,
      inserted: result.inserts.map((i) => formatField(i.path)),
      ...(result.maxTokens !== undefined ? { maxTokens: result.maxTokens } : {}),
    }
    // What the limits after the guard reserve: the forwarded bytes / 4, and the output bound.
    locals.tokenEstimate = { promptTokens: Math.ceil(rawBody.length / 4), outputTokens: result.outputTokens }
    locals.provider ??= endpoint.provider
    ;(req as { body?: unknown }).body = body
    // The headers now describe the validated bytes; the expectation of a 100-continue is met.
    req.headers['content-length'] = String(rawBody.length)
    delete req.headers['transfer-encoding']
    delete req.headers['content-encoding']
    delete req.headers.expect
    next()
  }

  function fromRaw(ctx: Ctx, next: NextFunction, buf: Buffer): void {
    if (buf.length === 0) return refuse(ctx, malformed('the request body is empty'))
    if (buf.length > config.bodyLimit) return refuse(ctx, tooLarge(config.bodyLimit))
    if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) {
      return refuse(ctx, malformed('the request body starts with a byte order mark'))
    }
    if (!isUtf8(buf)) return refuse(ctx, malformed('the request body is not valid UTF-8'))
    const text = buf.toString('utf8')
    const scan = scanJson(text, config, CAP_KEYS)
    if (scan.kind === 'syntax') return refuse(ctx, malformed('the request body is not valid JSON'))
    if (scan.kind !== 'ok') return refuse(ctx, FAILURES[scan.kind](formatField(scan.path), config))
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      // The parser's message quotes the body: never pass it on.
      return refuse(ctx, malformed('the request body is not valid JSON'))
    }
    const result = check(ctx, body)
    if ('status' in result) return refuse(ctx, result)
    const obj = body as Record<string, unknown>
    if (result.clamps.length === 0 && result.inserts.length === 0) return accept(ctx, next, obj, buf, false, [], result)
    // Rewrite only the clamped numbers; every other byte stays as the client sent it. An inserted
    // cap has no bytes to replace: then the body is serialised again.
    const edits = result.clamps.map((c) => ({ ...c, span: scan.spans.get(pathId(c.path)) }))
    for (const c of edits) setAt(obj, c.path, c.cap)
    for (const i of result.inserts) setAt(obj, i.path, i.cap)
    let out: Buffer
    const spliced = result.clamps.length === 0 ? spliceInserts(text, result.inserts) : undefined
    if (spliced !== undefined) {
      out = Buffer.from(spliced, 'utf8')
    } else if (result.inserts.length === 0 && edits.every((e) => e.span)) {
      let rewritten = text
      for (const e of [...edits].sort((a, b) => b.span![0] - a.span![0])) {
        rewritten = rewritten.slice(0, e.span![0]) + String(e.cap) + rewritten.slice(e.span![1])
      }
      out = Buffer.from(rewritten, 'utf8')
    } else {
      out = Buffer.from(JSON.stringify(obj), 'utf8')
    }
    accept(
      ctx,
      next,
      obj,
      out,
      false,
      result.clamps.map((c) => c.path),
      result,
    )
  }

  function fromParsed(ctx: Ctx, next: NextFunction, body: unknown): void {
    const walk = walkValue(body, config)
    if (walk?.kind === 'syntax') return refuse(ctx, malformed('the request body is not valid JSON'))
    if (walk) return refuse(ctx, FAILURES[walk.kind](formatField(walk.path), config))
    const result = check(ctx, body)
    if ('status' in result) return refuse(ctx, result)
    const obj = body as Record<string, unknown>
    for (const c of result.clamps) setAt(obj, c.path, c.cap)
    for (const i of result.inserts) setAt(obj, i.path, i.cap)
    const out = Buffer.from(JSON.stringify(obj), 'utf8')
    if (out.length > config.bodyLimit) return refuse(ctx, tooLarge(config.bodyLimit))
    accept(
      ctx,
      next,
      obj,
      out,
      true,
      result.clamps.map((c) => c.path),
      result,
    )
  }

  function readBody(ctx: Ctx, next: NextFunction): void {
    const { req } = ctx
    // The whole body is in the stream's buffer already (a small body comes in the packet with the
    // headers, and the layers before the guard let the parser get to it): take it now, with no
    // 'data' and 'end' round trips. Content-Length bounds the body, so all of it is there when the
    // buffer holds that many bytes.
    const declared = req.headers['content-length']
    const whole =
      req.complete ||
      (declared !== undefined && req.headers['transfer-encoding'] === undefined && req.readableLength === Number(declared))
    if (whole && !req.readableFlowing && req.listenerCount('data') === 0) {
      if (req.readableLength > config.bodyLimit) return refuse(ctx, tooLarge(config.bodyLimit))
      const body = req.read() as Buffer | null
      ctx.bodyUnread = false
      const check = (): void => {
        try {
          fromRaw(ctx, next, body ?? Buffer.alloc(0))
        } catch (err) {
          next(internalError(err))
        }
      }
      // Hand on only once the stream has emitted 'end' (reading the last bytes schedules it): a
      // proxy that pipes the request after this point then ends its upstream request on a later
      // tick, after the upstream socket is assigned and forwardBody has written the body. With
      // 'end' still pending, the pipe would end the upstream request first, with the client's
      // headers and no body.
      if (req.readableEnded) check()
      else {
        // Every declared byte is read; flowing mode lets the stream emit 'end' once the parser
        // has seen the end of the message (which, for an empty body, may not have happened yet).
        req.once('end', check)
        req.resume()
      }
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    const cleanup = (): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onGone)
      req.off('close', onClose)
    }
    function onData(chunk: Buffer): void {
      size += chunk.length
      if (size > config.bodyLimit) {
        cleanup()
        req.pause()
        chunks.length = 0
        refuse(ctx, tooLarge(config.bodyLimit))
        return
      }
      chunks.push(chunk)
    }
    function onEnd(): void {
      cleanup()
      ctx.bodyUnread = false
      try {
        fromRaw(ctx, next, Buffer.concat(chunks, size))
      } catch (err) {
        next(internalError(err))
      }
    }
    function onGone(): void {
      // The client went away mid-body: there is no one to answer.
      cleanup()
      chunks.length = 0
      log('debug', '@gatehouse/request-guard: client aborted while sending the body', { path: ctx.pathname })
    }
    function onClose(): void {
      if (!req.readableEnded) onGone()
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onGone)
    req.on('close', onClose)
  }

  function internalError(err: unknown): GatehouseError {
    log('error', '@gatehouse/request-guard: internal error', {
      error: err instanceof Error ? err.message : String(err),
    })
    return new GatehouseError(
      RequestGuardErrorCodes.GH_RG_INTERNAL,
      '@gatehouse/request-guard: the request body could not be checked',
      500,
      { cause: err },
    )
  }

  return function requestGuardMiddleware(req: Request, res: Response, next: NextFunction): void {
    try {
      const pathname = originPath(req.originalUrl || req.url || '/')
      const ctx: Ctx = {
        req,
        res,
        endpoint: resolveEndpoint(pathname, req.headers, req.method),
        pathname,
        bodyUnread: true,
      }
      const consumed = req.readableEnded || (req as { _body?: unknown })._body === true
      if (!BODY_METHODS.has(req.method)) {
        if (!consumed && hasBody(req.headers)) {
          return refuse(ctx, {
            status: 400,
            code: 'GH_RG_UNEXPECTED_BODY',
            message: `a ${req.method} request must not have a body`,
          })
        }
        return next()
      }
      if (consumed) {
        // An earlier body parser read the stream: check what it left.
        ctx.bodyUnread = false
        const media = mediaTypeRefusal(req.headers)
        if (media) return refuse(ctx, media)
        const parsed = (req as { body?: unknown }).body
        // express.raw() keeps the exact bytes; anything else is a value a JSON parser produced.
        if (Buffer.isBuffer(parsed)) return fromRaw(ctx, next, parsed)
        if (parsed !== undefined) return fromParsed(ctx, next, parsed)
        if (req.headers['content-length'] === '0') return fromRaw(ctx, next, Buffer.alloc(0))
        log(
          'error',
          '@gatehouse/request-guard: the request body was consumed before the guard by a middleware that left no req.body; mount the guard before body parsers',
          { path: pathname },
        )
        return next(
          new GatehouseError(
            RequestGuardErrorCodes.GH_RG_BODY_UNAVAILABLE,
            '@gatehouse/request-guard: the request body was consumed before the guard could check it',
            500,
          ),
        )
      }
      const encoding = encodingRefusal(req.headers)
      if (encoding) return refuse(ctx, encoding)
      const media = mediaTypeRefusal(req.headers)
      if (media) return refuse(ctx, media)
      const declared = req.headers['content-length']
      if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > config.bodyLimit) {
        return refuse(ctx, tooLarge(config.bodyLimit))
      }
      readBody(ctx, next)
    } catch (err) {
      next(internalError(err))
    }
  }
}

/**
 * The body text with caps written in at its end, without serialising it again: only for caps that
 * go at the top level (`max_tokens`) or into a top-level object the body does not have yet
 * (`generationConfig`). Undefined when an insert goes anywhere else.
 */
function spliceInserts(text: string, inserts: readonly { path: PathSegment[]; cap: number }[]): string | undefined {
  let end = text.length - 1
  while (end >= 0 && (text[end] === ' ' || text[end] === '\n' || text[end] === '\r' || text[end] === '\t')) end--
  if (text[end] !== '}') return undefined
  let members = ''
  for (const { path, cap } of inserts) {
    const key = path.length === 1 && typeof path[0] === 'string' ? JSON.stringify(path[0]) : undefined
    // A key the text names anywhere (a null cap, the same word in a message) takes the slow path:
    // the forwarded body must never hold a key twice.
    if (key === undefined || text.includes(key)) return undefined
    members += `,${key}:${cap}`
  }
  let before = end - 1
  while (before >= 0 && (text[before] === ' ' || text[before] === '\n' || text[before] === '\r' || text[before] === '\t')) before--
  // An empty object takes the members without the leading comma.
  if (text[before] === '{') members = members.slice(1)
  return text.slice(0, end) + members + text.slice(end)
}

/** Set a value at a path, creating the objects on the way (a Gemini body without generationConfig). */
function setAt(root: Record<string, unknown>, path: readonly PathSegment[], value: unknown): void {
  let node: Record<string | number, unknown> = root
  for (let i = 0; i < path.length - 1; i++) {
    const next = node[path[i]!]
    if (next === null || typeof next !== 'object') node[path[i]!] = {}
    node = node[path[i]!] as Record<string | number, unknown>
  }
  node[path[path.length - 1]!] = value
}

const site = (s: CapSite): PathSegment[] => s.path

/** What `check` found in an acceptable body. */
interface Checked {
  /** Values above their bound, lowered in the forwarded bytes (`onOverCap: 'clamp'`). */
  clamps: { path: PathSegment[]; cap: number }[]
  /** Caps written where the request set none (`insertCaps`). */
  inserts: { path: PathSegment[]; cap: number }[]
  maxTokens: number | undefined
  /** The effective output bound: each request's cap × its choices, summed over nested requests. */
  outputTokens: number
}
