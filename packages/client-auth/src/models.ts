import type { NextFunction, Request, RequestHandler, Response } from 'express'
import {
  detectProvider,
  emitSecurityEvent,
  gatehouseLocals,
  geminiBatchRequests,
  clientIp,
  sendProviderError,
  type Logger,
  type SecurityEventHandler,
} from '@gatehouse/core'

export interface KeyModelScopeOptions {
  /** Receives a `security_violation` event (`model_denied`) for each refusal. */
  onEvent?: SecurityEventHandler
  logger?: Logger
}

/** Longest model name an event carries (a client writes it). */
const MAX_MODEL_IN_EVENT = 120

/** `gpt-4o*` → /^gpt-4o.*$/; everything else is literal. Case-sensitive, as providers are. */
function patternRegex(pattern: string): RegExp {
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, '\\$&'))
    .join('.*')
  return new RegExp(`^${source}$`)
}

/** `models/gemini-2.0-flash` and `gemini-2.0-flash` are the same model. */
const bare = (model: string): string => (model.startsWith('models/') ? model.slice(7) : model)

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

function decode(raw: string): string {
  try {
    return decodeURIComponent(raw)
  } catch {
    return raw
  }
}

/**
 * Every model a request names: the body's `model`, the model in a Gemini path
 * (`/v1beta/models/<model>:generateContent`), and each nested batch request's (`requests[i].params.model`
 * for Anthropic, `requests[i].model` for Gemini's batch embeddings, a Gemini batch's `batch.model`
 * and its inline requests' `request.model`), and the models of an uploaded OpenAI batch file's lines.
 */
export function modelsOfRequest(req: Request, res: Response): string[] {
  const out: string[] = []
  const locals = gatehouseLocals(res)
  const path = locals.route?.upstreamPath ?? req.path
  const inPath = /\/models\/([^/:]+)/.exec(path)
  if (inPath) out.push(decode(inPath[1]!))
  const body: unknown = req.body
  if (isObject(body)) {
    if (typeof body.model === 'string') out.push(body.model)
    if (Array.isArray(body.requests)) {
      for (const entry of body.requests) {
        if (!isObject(entry)) continue
        if (typeof entry.model === 'string') out.push(entry.model)
        if (isObject(entry.params) && typeof entry.params.model === 'string') out.push(entry.params.model)
      }
    }
    geminiBatchModels(body, out)
  }
  // An uploaded OpenAI batch file's lines, as request-guard read them.
  if (locals.batchInput) out.push(...locals.batchInput.models)
  return out.map(bare)
}

/** A Gemini batch names its model, and each inline request may name one too. */
function geminiBatchModels(body: Record<string, unknown>, out: string[]): void {
  if (isObject(body.batch) && typeof body.batch.model === 'string') out.push(body.batch.model)
  for (const { request } of geminiBatchRequests(body)) if (typeof request.model === 'string') out.push(request.model)
}

/**
 * Refuse a request naming a model outside the authenticated key's `models` scope, with 403 in the
 * provider's error shape. Mount it after the body is parsed (after request-guard) and after
 * `clientAuth`; a key without a models scope passes. Patterns match whole names, `*` any run of
 * characters; `models/` prefixes are ignored on both sides.
 */
export function keyModelScope(options: KeyModelScopeOptions = {}): RequestHandler {
  const compiled = new Map<readonly string[], RegExp[]>()
  return function keyModelScopeMiddleware(req: Request, res: Response, next: NextFunction): void {
    const locals = gatehouseLocals(res)
    const scope = locals.clientKeyModels
    if (!scope) return next()
    let patterns = compiled.get(scope)
    if (!patterns) {
      // Scopes are frozen per key record, so the array itself is a stable cache key.
      patterns = scope.map((p) => patternRegex(bare(p)))
      if (compiled.size > 10_000) compiled.clear()
      compiled.set(scope, patterns)
    }
    const denied = modelsOfRequest(req, res).find((m) => !patterns.some((re) => re.test(m)))
    if (denied === undefined) return next()
    emitSecurityEvent(options.onEvent, {
      event_type: 'security_violation',
      ip: clientIp(req),
      ...(locals.clientKeyId ? { user_id: locals.clientKeyId } : {}),
      ...(locals.provider ? { provider: locals.provider } : {}),
      result: 'model_denied',
      details: { model: denied.slice(0, MAX_MODEL_IN_EVENT), ...(locals.requestId ? { request_id: locals.requestId } : {}) },
    }, (err) => options.logger?.error('@gatehouse/client-auth: event handler threw', { error: String(err) }))
    sendProviderError(res, detectProvider(req), 403, {
      message: `This API key may not use model ${JSON.stringify(denied.slice(0, MAX_MODEL_IN_EVENT))}`,
      param: 'model',
    })
  }
}
