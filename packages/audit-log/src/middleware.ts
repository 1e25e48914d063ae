import type { RequestHandler } from 'express'
import {
  emitSecurityEvent,
  gatehouseLocals,
  clientIp,
  resolveProviderRoute,
  tokenCharge,
  type SecurityEventInput,
} from '@gatehouse/core'
import { createSinkMasker, type SinkMasker } from './mask'
import { resolveAccessLogConfig, type AccessLogOptions } from './access-options'

const PKG = '@gatehouse/audit-log'
const MAX_PATH_CHARS = 2048

/**
 * The logged form of a request URL: the path through the masker, and every query value replaced
 * by `****` (names kept, masked too), so no key in a query string reaches a log.
 */
export function maskRequestUrl(url: string, mask: Pick<SinkMasker, 'text'>): string {
  const q = url.indexOf('?')
  const path = mask.text(q === -1 ? url : url.slice(0, q))
  let out = path
  if (q !== -1) {
    const query = url.slice(q + 1)
    const parts = query === '' ? [] : query.split('&').map((part) => {
      const eq = part.indexOf('=')
      return eq === -1 ? '****' : `${mask.text(part.slice(0, eq))}=****`
    })
    out = `${path}?${parts.join('&')}`
  }
  return out.length > MAX_PATH_CHARS ? `${out.slice(0, MAX_PATH_CHARS)}…` : out
}

const resultOf = (status: number, finished: boolean): string =>
  !finished ? 'aborted' : status >= 500 ? 'server_error' : status >= 400 ? 'client_error' : 'success'

/**
 * The access log: one `provider_request` event per request, emitted when the response is over
 * ('close': sent in full, or cut off when the connection closed first), with the request id, client address,
 * client key id, provider, method, path (query values masked), status, duration and the upstream
 * token usage when the proxy layer recorded it. Nothing is wrapped or patched on the response.
 */
export function accessLog(options: AccessLogOptions): RequestHandler {
  const config = resolveAccessLogConfig(options)
  const mask = createSinkMasker(config.knownSecrets)
  const onError = (err: unknown): void => {
    config.logger.error(`${PKG}: the access-log event handler threw`, {
      error: mask.text(err instanceof Error ? err.message : String(err)),
    })
  }

  return function accessLogMiddleware(req, res, next) {
    if (config.skip) {
      let skip = false
      try {
        skip = config.skip(req, res)
      } catch (err) {
        onError(err)
      }
      if (skip) {
        next()
        return
      }
    }
    const started = process.hrtime.bigint()
    const method = req.method
    const url = req.originalUrl || req.url
    const routed = resolveProviderRoute(req.path)?.provider
    const ip = clientIp(req)
    let done = false

    const emit = (finished: boolean): void => {
      if (done) return
      done = true
      const locals = gatehouseLocals(res)
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6
      const details: Record<string, unknown> = {
        method,
        path: maskRequestUrl(url, mask),
        status: res.statusCode,
        duration_ms: Math.round(durationMs * 1000) / 1000,
      }
      // The figure the limits settle on (tokenCharge): the provider's usage, or the pessimistic
      // bound when the upstream got the request and said nothing (`usage: "estimated"`).
      const charge = tokenCharge(res)
      if (charge.source === 'reported' || charge.source === 'estimated') {
        if (charge.inputTokens !== undefined) details.input_tokens = charge.inputTokens
        if (charge.outputTokens !== undefined) details.output_tokens = charge.outputTokens
        details.usage = charge.source
      }
      // The client's own id for this request (a plain token), beside the gateway's request_id.
      if (locals.clientRequestId !== undefined) details.client_request_id = locals.clientRequestId
      if (config.details) {
        try {
          const extra = config.details(req, res)
          if (extra) {
            for (const [k, v] of Object.entries(mask.value(extra))) if (v !== undefined && !(k in details)) details[k] = v
          }
        } catch (err) {
          onError(err)
        }
      }
      const event: SecurityEventInput = {
        event_type: 'provider_request',
        ip,
        result: resultOf(res.statusCode, finished),
        details,
      }
      const provider = locals.provider ?? routed
      if (provider !== undefined) event.provider = provider
      if (locals.clientKeyId !== undefined) event.user_id = locals.clientKeyId
      if (locals.requestId !== undefined) event.request_id = locals.requestId
      emitSecurityEvent(config.onEvent, event, onError)
    }
    // 'close' follows 'finish' on every response, and comes alone when the connection closed first:
    // one listener tells both apart.
    res.on('close', () => emit(res.writableFinished))
    next()
  }
}
