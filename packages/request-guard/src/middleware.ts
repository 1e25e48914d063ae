import { isUtf8 } from 'node:buffer'
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { GatehouseError } from '@gatehouse/core'
import { resolveRequestGuardConfig, type RequestGuardOptions } from './options'
import { resolveEndpoint } from './endpoints'
import { compileBodyValidators, type BodyValidators } from './schemas'
import { scanJson, walkValue } from './scan'
import { formatField } from './fields'
import { CAP_KEYS } from './caps'
import { RequestGuardErrorCodes } from './errors'
import type { Ctx } from './context'
import { createAnswers } from './answers'
import { checkBody } from './check'
import { BODY_METHODS, encodingRefusal, hasBody, mediaTypeRefusal, originPath } from './headers'
import { readBody } from './read-body'
import { FAILURES, malformed, tooLarge } from './refusal'
import { applyEdits, rewriteBody } from './rewrite'
import { accept, acceptUpload } from './accept'
import { framingRefusal, malformedUpload, multipartBoundary } from './multipart'
import { createSecretScreen } from './secret-guard'
import { checkBatchUpload } from './batch-file'

export type { RequestGuardLocals } from './accept'

/**
 * Validate LLM provider request bodies before they are proxied: body size, content type, JSON
 * well-formedness and structure, the provider's request schema, and max-token caps. It reads the
 * raw body itself (mount it before any body parser), keeps the exact validated bytes for
 * `forwardBody`, and puts the parsed object on `req.body`.
 */
export function requestGuard(options: RequestGuardOptions = {}): RequestHandler {
  const config = resolveRequestGuardConfig(options)
  const validators: BodyValidators = config.validateSchema ? compileBodyValidators() : new Map()
  const answers = createAnswers(config)
  const { refuse, log, internalError } = answers
  const screen = config.secrets ? createSecretScreen(config.secrets, answers) : undefined

  /** `masked`: the guard's own rewrite of a body that passed (credentials masked), checked again. */
  function fromRaw(ctx: Ctx, next: NextFunction, buf: Buffer, masked = false): void {
    if (buf.length === 0) return refuse(ctx, malformed('the request body is empty'))
    if (buf.length > config.bodyLimit && !masked) return refuse(ctx, tooLarge(config.bodyLimit))
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
    const result = checkBody(config, validators, ctx.req.method, ctx.endpoint, body)
    if ('status' in result) return refuse(ctx, result)
    if (screen && !masked) {
      const screened = screen(ctx, text)
      if (screened === 'answered') return
      if (screened && 'error' in screened) return next(screened.error)
      // Masking changed only characters inside strings: check the new bytes like any body.
      if (screened) return fromRaw(ctx, next, Buffer.from(screened.masked, 'utf8'), true)
    }
    const obj = body as Record<string, unknown>
    if (result.clamps.length === 0 && result.inserts.length === 0)
      return accept(answers, ctx, next, obj, buf, false, result)
    accept(answers, ctx, next, obj, rewriteBody(text, obj, scan.spans, result), false, result)
  }

  /**
   * A file upload: framed as its Content-Type says, then scanned for credentials as bytes (a hit
   * outside anything JSON-shaped cannot be masked: it is refused, unless its action is `log`).
   */
  function fromUpload(ctx: Ctx, next: NextFunction, buf: Buffer, boundary: string): void {
    if (buf.length === 0) return refuse(ctx, malformedUpload('the request body is empty'))
    if (buf.length > config.bodyLimit) return refuse(ctx, tooLarge(config.bodyLimit))
    const framing = framingRefusal(buf, boundary)
    if (framing) return refuse(ctx, framing)
    if (screen) {
      // latin1: one character per byte, so a masked text turns back into the same bytes around the marker.
      const screened = screen(ctx, buf.toString('latin1'))
      if (screened === 'answered') return
      if (screened && 'error' in screened) return next(screened.error)
      if (screened) return handOnUpload(ctx, next, Buffer.from(screened.masked, 'latin1'), boundary)
    }
    handOnUpload(ctx, next, buf, boundary)
  }

  /** An OpenAI upload is read for its purpose: a batch input's lines are checked as the requests they are. */
  function handOnUpload(ctx: Ctx, next: NextFunction, buf: Buffer, boundary: string): void {
    if (ctx.endpoint.provider !== 'openai') return acceptUpload(ctx, next, buf)
    checkBatchUpload(config, validators, buf, ctx.req.headers['content-type'] ?? '', boundary).then(
      (batch) => {
        if (batch !== undefined && 'status' in batch) return refuse(ctx, batch)
        acceptUpload(ctx, next, buf, batch)
      },
      (err: unknown) => next(internalError(err)),
    )
  }

  function fromParsed(ctx: Ctx, next: NextFunction, body: unknown): void {
    const walk = walkValue(body, config)
    if (walk?.kind === 'syntax') return refuse(ctx, malformed('the request body is not valid JSON'))
    if (walk) return refuse(ctx, FAILURES[walk.kind](formatField(walk.path), config))
    const result = checkBody(config, validators, ctx.req.method, ctx.endpoint, body)
    if ('status' in result) return refuse(ctx, result)
    let obj = body as Record<string, unknown>
    applyEdits(obj, result)
    const text = JSON.stringify(obj)
    let out = Buffer.from(text, 'utf8')
    if (out.length > config.bodyLimit) return refuse(ctx, tooLarge(config.bodyLimit))
    if (screen) {
      const screened = screen(ctx, text)
      if (screened === 'answered') return
      if (screened && 'error' in screened) return next(screened.error)
      if (screened) {
        out = Buffer.from(screened.masked, 'utf8')
        obj = JSON.parse(screened.masked) as Record<string, unknown>
      }
    }
    accept(answers, ctx, next, obj, out, true, result)
  }

  /** An earlier body parser read the stream: check what it left. */
  function fromConsumed(ctx: Ctx, next: NextFunction): void {
    const { req } = ctx
    ctx.bodyUnread = false
    const parsed = (req as { body?: unknown }).body
    const empty = req.headers['content-length'] === '0'
    if (ctx.endpoint.multipart) {
      const boundary = multipartBoundary(req.headers)
      if (typeof boundary !== 'string') return refuse(ctx, boundary)
      // A parser that kept the bytes (express.raw()): a parsed form would not be the bytes to send.
      if (Buffer.isBuffer(parsed) || empty) return fromUpload(ctx, next, Buffer.isBuffer(parsed) ? parsed : Buffer.alloc(0), boundary)
    } else {
      const media = mediaTypeRefusal(req.headers)
      if (media) return refuse(ctx, media)
      // express.raw() keeps the exact bytes; anything else is a value a JSON parser produced.
      if (Buffer.isBuffer(parsed)) return fromRaw(ctx, next, parsed)
      if (parsed !== undefined) return fromParsed(ctx, next, parsed)
      if (empty) return fromRaw(ctx, next, Buffer.alloc(0))
    }
    log(
      'error',
      '@gatehouse/request-guard: the request body was consumed before the guard by a middleware that left no req.body; mount the guard before body parsers',
      { path: ctx.pathname },
    )
    next(
      new GatehouseError(
        RequestGuardErrorCodes.GH_RG_BODY_UNAVAILABLE,
        '@gatehouse/request-guard: the request body was consumed before the guard could check it',
        500,
      ),
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
      if (consumed) return fromConsumed(ctx, next)
      const encoding = encodingRefusal(req.headers)
      if (encoding) return refuse(ctx, encoding)
      // A file upload is multipart with its boundary; every other body is JSON.
      const media = ctx.endpoint.multipart ? multipartBoundary(req.headers) : mediaTypeRefusal(req.headers)
      if (media !== undefined && typeof media !== 'string') return refuse(ctx, media)
      const declared = req.headers['content-length']
      if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > config.bodyLimit) {
        return refuse(ctx, tooLarge(config.bodyLimit))
      }
      if (typeof media === 'string') readBody(ctx, next, answers, config.bodyLimit, (c, n, buf) => fromUpload(c, n, buf, media))
      else readBody(ctx, next, answers, config.bodyLimit, fromRaw)
    } catch (err) {
      next(internalError(err))
    }
  }
}
