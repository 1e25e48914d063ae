import http from 'node:http'
import https from 'node:https'
import type { Request, RequestHandler, Response } from 'express'
import { createProxyMiddleware, proxyEventsPlugin, type Plugin } from 'http-proxy-middleware'
import { gatehouseLocals, sendProviderError, type ProviderName } from '@gatehouse/core'
import { ProxyErrorCodes } from './errors'
import { coded, flightOf } from './flight'
import type { ProxyConfig, ResolvedProvider } from './options'
import { clearTimers, relayBody, relayError, relayHead, type Flight } from './relay'

/**
 * The upstream keep-alive agent. No cap on sockets (Node's default; the number of client
 * connections bounds it): a request the agent queued would get its socket only after the proxy's
 * pipe of an already-read request had ended it, before the body could be written.
 */
const AGENT_OPTIONS: http.AgentOptions = { keepAlive: true, maxFreeSockets: 64, scheduling: 'lifo' }

/** The response flush stage (batching only), as the relay takes it. */
export type FlushLater = ((f: Flight, res: http.ServerResponse) => void) | undefined

/** Fails a request: its upstream request and response are destroyed, the client gets 502 or 504. */
export type FailRequest = (req: Request, res: Response, provider: ProviderName, err: NodeJS.ErrnoException) => void

/** The failure path of one proxy: logs, and answers in the provider's shape unless headers left. */
export function upstreamFailure(config: ProxyConfig): FailRequest {
  return (req, res, provider, err) => {
    const f = flightOf(req)
    if (f) {
      if (f.done) return
      f.done = true
      clearTimers(f)
      f.proxyReq?.destroy()
      f.proxyRes?.destroy()
    }
    const timedOut =
      err.code === ProxyErrorCodes.GH_PROXY_CONNECT_TIMEOUT || err.code === ProxyErrorCodes.GH_PROXY_FIRST_BYTE_TIMEOUT || err.code === 'ETIMEDOUT'
    config.logger.warn('upstream request failed', {
      provider,
      request_id: gatehouseLocals(res).requestId,
      code: timedOut ? ProxyErrorCodes.GH_PROXY_UPSTREAM_TIMEOUT : ProxyErrorCodes.GH_PROXY_UPSTREAM_FAILED,
      cause: err.code ?? 'unknown',
    })
    if (res.headersSent) {
      res.destroy()
      return
    }
    sendProviderError(res, provider, timedOut ? 504 : 502, {
      message: timedOut
        ? `The ${provider} upstream did not answer in time`
        : `The ${provider} upstream could not be reached`,
    })
  }
}

/**
 * The upstream side of one proxy: one http-proxy-middleware (and keep-alive agent) per provider,
 * whose events write the validated body once the socket may carry it and relay the answer. Every
 * closure here is made once per proxy, never per request.
 */
export function upstreamProxies(
  config: ProxyConfig,
  agents: http.Agent[],
  fail: FailRequest,
  flushLater: FlushLater,
): (p: ResolvedProvider) => RequestHandler {
  const build = (p: ResolvedProvider): RequestHandler => {
    const agent =
      p.target.protocol === 'https:' ? new https.Agent(AGENT_OPTIONS) : new http.Agent(AGENT_OPTIONS)
    agents.push(agent)
    return createProxyMiddleware<Request, Response>({
      target: p.target.href,
      changeOrigin: true,
      xfwd: false,
      agent,
      selfHandleResponse: true,
      followRedirects: false,
      autoRewrite: false,
      // Only the plugin that wires `on` below: errors are answered here in the provider's shape.
      ejectPlugins: true,
      plugins: [proxyEventsPlugin as unknown as Plugin<Request, Response>],
      on: {
        proxyReq(proxyReq, req, res) {
          guarded(req, res, p.name, () => prepare(proxyReq, req, res))
        },
        proxyRes(proxyRes, req, res) {
          guarded(req, res, p.name, () => respond(proxyRes, req, res))
        },
        error(err, req, res) {
          if (res instanceof http.ServerResponse)
            fail(req, res as Response, p.name, err as NodeJS.ErrnoException)
        },
      },
    })
  }

  /**
   * Runs an event handler of the proxy so that nothing it throws escapes into http-proxy's event
   * emitters (an exception there would end the process): the request fails with 502 instead.
   */
  const guarded = (req: Request, res: Response, provider: ProviderName, fn: () => void): void => {
    try {
      fn()
    } catch (err) {
      config.logger.error('@gatehouse/proxy: request failed in the relay', {
        error: config.masker.text(String(err)),
      })
      fail(req, res, provider, coded(ProxyErrorCodes.GH_PROXY_RELAY_FAILED, 'relay failed'))
    }
  }

  const prepare = (proxyReq: http.ClientRequest, req: Request, res: Response): void => {
    const f = flightOf(req)
    if (!f || f.done) {
      proxyReq.destroy()
      return
    }
    f.proxyReq = proxyReq
    if (proxyReq.headersSent) {
      // Ended before its socket came (a pipe of an already-read stream): never let it leave.
      proxyReq.destroy(
        coded(ProxyErrorCodes.GH_PROXY_REQUEST_ENDED, 'the upstream request was ended before the gateway prepared it'),
      )
      return
    }
    const socket = proxyReq.socket
    const locals = gatehouseLocals(res)
    // From the moment the request can leave on a connected socket, the provider may spend tokens
    // on it (tokenCharge charges the bound when no usage comes back); before, it cannot.
    if (socket && socket.connecting) {
      f.connectTimer = setTimeout(
        () => proxyReq.destroy(coded(ProxyErrorCodes.GH_PROXY_CONNECT_TIMEOUT, 'upstream connect timeout')),
        config.timeouts.connect,
      )
      socket.once('connect', () => {
        if (f.connectTimer) clearTimeout(f.connectTimer)
        if (!f.done) locals.upstreamReached = true
      })
    } else if (socket) locals.upstreamReached = true
    else {
      // The socket comes on a later tick: a kept-alive one is connected already, a new one connects.
      const reached = (): void => {
        if (!f.done) locals.upstreamReached = true
      }
      proxyReq.once('socket', (s) => (s.connecting ? s.once('connect', reached) : reached()))
    }
    // end() rather than write(): the proxy's own pipe of the (already read) request then only
    // calls end() again, a no-op, and nothing else can be appended.
    if (f.body !== undefined) proxyReq.end(f.body)
  }

  const respond = (proxyRes: http.IncomingMessage, req: Request, res: Response): void => {
    const f = flightOf(req)
    if (!f || f.done) {
      proxyRes.destroy()
      return
    }
    f.proxyRes = proxyRes
    if (f.firstByteTimer) clearTimeout(f.firstByteTimer)
    const locals = gatehouseLocals(res)
    locals.upstreamReached = true
    locals.upstreamStatus = proxyRes.statusCode ?? 502
    proxyRes.on('error', (err) => fail(req, res, f.provider, err))
    const head = relayHead(config, f, proxyRes, res)
    const status = proxyRes.statusCode ?? 502
    if (status >= 400) relayError(config, f, proxyRes, res, status)
    else relayBody(config, f, proxyRes, res, head, flushLater)
  }
  return build
}
