import type { NextFunction } from 'express'
import { gatehouseLocals } from '@gatehouse/core'
import type { Ctx } from './context'
import type { Answers } from './answers'
import type { Checked } from './check'
import { formatField } from './fields'
import type { BatchUpload } from './batch-file'

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

/**
 * Hand an accepted file upload on: its bytes as they came (or with credentials masked), no parsed
 * body, and no tokens to reserve (an upload is not a model call), unless it is a checked batch
 * input: then its bytes as checked, its lines' models and their bound.
 */
export function acceptUpload(ctx: Ctx, next: NextFunction, rawBody: Buffer, batch?: BatchUpload): void {
  const { req, res, endpoint } = ctx
  const locals = gatehouseLocals(res)
  const body = batch?.body ?? rawBody
  locals.requestGuard = { rawBody: body, endpoint: endpoint.kind, provider: endpoint.provider, reserialized: batch !== undefined, clamped: batch?.clamped ?? [], inserted: batch?.inserted ?? [] }
  locals.tokenEstimate = { promptTokens: batch?.promptTokens ?? 0, outputTokens: batch?.outputTokens ?? 0 }
  if (batch) locals.batchInput = { models: batch.models, requests: batch.requests }
  locals.provider ??= endpoint.provider
  describeForwarded(req, body)
  next()
}

/** The headers now describe the bytes handed on; the expectation of a 100-continue is met. */
function describeForwarded(req: Ctx['req'], rawBody: Buffer): void {
  req.headers['content-length'] = String(rawBody.length)
  delete req.headers['transfer-encoding']
  delete req.headers['content-encoding']
  delete req.headers.expect
}

/**
 * Hand an accepted body on: what the guard leaves in `res.locals.gatehouse`, the parsed body on
 * `req.body`, headers that describe the forwarded bytes, and the clamp event.
 */
export function accept(
  answers: Answers,
  ctx: Ctx,
  next: NextFunction,
  body: Record<string, unknown>,
  rawBody: Buffer,
  reserialized: boolean,
  result: Checked,
): void {
  const { req, res, endpoint } = ctx
  const clampedFields = result.clamps.map((c) => formatField(c.path))
  if (clampedFields.length > 0)
    answers.emit(ctx, 'max_tokens_clamped', { code: 'GH_RG_MAX_TOKENS_EXCEEDED', fields: clampedFields })
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
  describeForwarded(req, rawBody)
  next()
}
