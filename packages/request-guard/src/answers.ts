import {
  emitSecurityEvent,
  GatehouseError,
  gatehouseLocals,
  clientIp,
  sendProviderError,
  type ProviderErrorInfo,
} from '@gatehouse/core'
import type { RequestGuardConfig } from './options'
import type { Ctx } from './context'
import type { Refusal } from './refusal'
import { discardRest } from './read-body'
import { RequestGuardErrorCodes } from './errors'

/** How the guard speaks: its log lines, its events and its error answers. */
export interface Answers {
  /** A logger that throws must not turn a refusal into a crash. */
  log(level: 'error' | 'warn' | 'debug', message: string, meta: Record<string, unknown>): void
  /** One `security_violation` event about this request. */
  emit(ctx: Ctx, result: string, details: Record<string, unknown>): void
  /** Answer a refusal in the client's provider shape, with its event; `extra` adds to the event's details. */
  refuse(ctx: Ctx, r: Refusal, extra?: Record<string, unknown>): void
  /** Log an unexpected failure and make the 500 that goes to `next(err)`. */
  internalError(err: unknown): GatehouseError
}

export function createAnswers(config: RequestGuardConfig): Answers {
  function log(level: 'error' | 'warn' | 'debug', message: string, meta: Record<string, unknown>): void {
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

  function refuse(ctx: Ctx, r: Refusal, extra?: Record<string, unknown>): void {
    emit(ctx, r.code.slice('GH_RG_'.length).toLowerCase(), {
      code: r.code,
      status: r.status,
      ...(r.field ? { field: r.field } : {}),
      ...(r.limit !== undefined ? { limit: r.limit } : {}),
      ...extra,
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
    const headers: Record<string, string> =
      ctx.bodyUnread && !discardRest(ctx.req) ? { Connection: 'close' } : {}
    sendProviderError(ctx.res, ctx.endpoint.dialect, r.status, info, headers)
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

  return { log, emit, refuse, internalError }
}
