import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http'
import type { GatehouseLocals } from '@gatehouse/core'

/**
 * Write the body the guard validated to the upstream request, with a matching Content-Length.
 * Call it from http-proxy-middleware's `on.proxyReq` handler, after any handler that sets
 * headers:
 *
 * ```ts
 * createProxyMiddleware({ target, on: { proxyReq: forwardBody } })
 * ```
 *
 * It does nothing for a request the guard let through without a body (GET) and nothing the second
 * time it is called for the same request. If the upstream request was already ended by someone
 * else, it destroys it rather than send a body that was not validated.
 */
export function forwardBody(proxyReq: ClientRequest, _req: IncomingMessage, res: ServerResponse): void {
  const state = (res as { locals?: { gatehouse?: GatehouseLocals } }).locals?.gatehouse?.requestGuard
  if (!state || state.forwarded) return
  state.forwarded = true
  if (proxyReq.headersSent || proxyReq.writableEnded) {
    proxyReq.destroy(
      new Error(
        '@gatehouse/request-guard: the upstream request was sent before forwardBody could write the validated body',
      ),
    )
    return
  }
  proxyReq.removeHeader('transfer-encoding')
  proxyReq.removeHeader('content-encoding')
  proxyReq.removeHeader('expect')
  proxyReq.setHeader('content-length', state.rawBody.length)
  // end() rather than write(): the proxy's own pipe of the (already read) request stream then only
  // calls end() again, which is a no-op, and nothing else can be appended.
  proxyReq.end(state.rawBody)
}
