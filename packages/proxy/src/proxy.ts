import http from 'node:http'
import https from 'node:https'
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { createProxyMiddleware, proxyEventsPlugin, type Plugin } from 'http-proxy-middleware'
import {
  emitSecurityEvent,
  gatehouseLocals,
  sendProviderError,
  clientIp,
  type ProviderName,
} from '@gatehouse/core'
import { admit } from './admission'
import { batchedStage } from './batch'
import { ProxyErrorCodes } from './errors'
import { headerPolicy, type HeaderPolicy } from './headers'
import {
  resolveProxyConfig,
  secretsOf,
  type ProxyConfig,
  type ProxyOptions,
  type ResolvedProvider,
} from './options'
import { clearTimers, relayBody, relayError, relayHead, type Flight } from './relay'
import { prepareSecrets, type InjectedSecrets } from './mask'
import { withStreamUsage } from './metering'

export interface GatehouseProxy extends RequestHandler {
  /**
   * Routing and the endpoint allowlist alone, for a pipeline that wants refusals before it reads
   * bodies or spends limits. The proxy runs the same check itself when this did not run first.
   */
  admission: RequestHandler
  /** Close the upstream keep-alive sockets. */
  close(): void
}

const coded = (code: string, message: string): NodeJS.ErrnoException =>
  Object.assign(new Error(message), { code })

/**
 * The upstream keep-alive agent. No cap on sockets (Node's default; the number of client
 * connections bounds it): a request the agent queued would get its socket only after the proxy's
 * pipe of an already-read request had ended it, before the body could be written.
 */
const AGENT_OPTIONS: http.AgentOptions = { keepAlive: true, maxFreeSockets: 64, scheduling: 'lifo' }

/**
 * Where a request's proxy state lives: a symbol-keyed property of the request rather than a
 * WeakMap keyed by it (every WeakMap entry for a short-lived request is an ephemeron the garbage
 * collector traces in each scavenge).
 */
const FLIGHT = Symbol('gatehouse.proxy.flight')
type WithFlight = { [FLIGHT]?: Flight }
const flightOf = (req: http.IncomingMessage): Flight | undefined => (req as WithFlight)[FLIGHT]

/** The body to send: the caller's (validated) buffer, a body parser's JSON, or the stream itself. */
function bodyOf(config: ProxyConfig, req: Request, res: Response): Buffer | undefined {
  const given = config.body?.(req, res)
  if (given !== undefined) return given
  // A body parser read the stream: send what it parsed rather than an empty body.
  if (req.readableEnded && req.body !== undefined && req.body !== null && typeof req.body === 'object') {
    return Buffer.from(JSON.stringify(req.body))
  }
  return undefined
}

/** A streamed body keeps the client's declared length (Node checks it); otherwise Node chunks it. */
function streamedLength(req: Request): number | undefined {
  const cl = req.headers['content-length']
  if (cl === undefined || req.headers['transfer-encoding'] !== undefined) return undefined
  const n = Number(cl)
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined
}

/**
 * The data plane (SPEC §3 "What crosses the proxy"): one Express middleware that forwards
 * admitted provider requests with http-proxy-middleware. The upstream request's headers are
 * computed before it is created, from the header allowlist plus the credential, so no event a
 * client can suppress decides what leaves; a request without a credential is never sent.
 */
export function gatehouseProxy(options: ProxyOptions): GatehouseProxy {
  const config = resolveProxyConfig(options)
  const agents: http.Agent[] = []
  const policies = new Map<ProviderName, HeaderPolicy>()
  const proxies = new Map<ProviderName, RequestHandler>()
  // A credential's header object lives as long as the credential: its secrets are prepared once.
  const prepared = new WeakMap<object, InjectedSecrets>()
  const injectedOf = (headers: Readonly<Record<string, string>>): InjectedSecrets => {
    let got = prepared.get(headers)
    if (!got) prepared.set(headers, (got = prepareSecrets(secretsOf(headers))))
    return got
  }

  // The response flush stage (batching only): first chunks written corked, uncorked together next turn.
  const flushLater = config.batching
    ? batchedStage<[Flight, http.ServerResponse]>(
        (f, res) => {
          const action = f.flush
          f.flush = undefined
          if (action === 'end') res.end()
          else if (action === 'uncork') res.uncork()
        },
        (_err, _f, res) => void res.destroy(),
      )
    : undefined

  const fail = (req: Request, res: Response, provider: ProviderName, err: NodeJS.ErrnoException): void => {
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
  for (const p of config.providers.values()) {
    policies.set(p.name, headerPolicy(p.name))
    proxies.set(p.name, build(p))
  }

  /** Prepare the flight and hand the request to http-proxy-middleware. */
  const send = (
    req: Request,
    res: Response,
    next: NextFunction,
    p: ResolvedProvider,
    upstreamPath: string,
  ): void => {
    const locals = gatehouseLocals(res)
    const credential = config.credential?.(req, res) ?? p.staticCredential
    if (!credential) {
      emitSecurityEvent(config.onEvent, {
        event_type: 'credential_access',
        provider: p.name,
        ip: clientIp(req),
        ...(locals.requestId !== undefined ? { request_id: locals.requestId } : {}),
        result: 'unavailable',
        details: { code: ProxyErrorCodes.GH_PROXY_NO_CREDENTIAL },
      })
      sendProviderError(res, p.name, 503, {
        message: `No upstream credential is available for provider "${p.name}"`,
      })
      return
    }
    let body = bodyOf(config, req, res)
    const asked =
      config.streamUsage && body !== undefined
        ? withStreamUsage(locals.endpoint, (req as { body?: unknown }).body, body)
        : undefined
    if (asked) body = asked
    const policy = policies.get(p.name)!
    const f: Flight = {
      ...(asked ? { stripUsageEvent: true } : {}),
      provider: p.name,
      credential,
      injected: injectedOf(credential.headers),
      policy,
      body,
      inference: locals.endpointInference ?? false,
      done: false,
    }
    ;(req as WithFlight)[FLIGHT] = f
    // The request's headers become exactly what may go upstream: http-proxy copies them as they are.
    req.headers = policy.outgoing(
      req.headers,
      credential.headers,
      config.extraHeaders,
      body !== undefined ? body.length : streamedLength(req),
    ) as http.IncomingHttpHeaders
    const q = req.url.indexOf('?')
    req.url = upstreamPath + (q === -1 ? '' : req.url.slice(q))
    f.firstByteTimer = setTimeout(
      () => fail(req, res, p.name, coded(ProxyErrorCodes.GH_PROXY_FIRST_BYTE_TIMEOUT, 'first byte timeout')),
      config.timeouts.firstByte,
    )
    res.on('close', () => {
      // The client went away (or the response ended): never leave the upstream request running.
      if (!f.done) {
        f.done = true
        clearTimers(f)
        f.proxyReq?.destroy()
        f.proxyRes?.destroy()
      }
    })
    void proxies.get(p.name)!(req, res, next)
  }

  const dispatch = config.batching
    ? batchedStage<[Request, Response, NextFunction, ResolvedProvider, string]>(
        (req, res, next, p, path) => {
          // A client that left while its request waited is not proxied.
          if (!res.destroyed) send(req, res, next, p, path)
        },
        (err, _req, _res, next) => next(err),
      )
    : send

  const handler = function gatehouseProxyMiddleware(req: Request, res: Response, next: NextFunction): void {
    try {
      const admitted = admit(config, req, res)
      if (admitted === 'not-ours') return next()
      if (admitted === 'answered') return
      // Nothing has left the gateway yet: a request answered before it does costs no tokens.
      gatehouseLocals(res).upstreamReached = false
      if (config.body && !req.readableEnded) {
        // A body is given but nobody read the stream: read it to its end first, so that the proxy's
        // pipe of the request stream appends nothing to the body written.
        req.resume()
        req.once('end', () => dispatch(req, res, next, admitted.provider, admitted.route.upstreamPath))
        return
      }
      dispatch(req, res, next, admitted.provider, admitted.route.upstreamPath)
    } catch (err) {
      next(err)
    }
  } as GatehouseProxy
  handler.admission = function endpointAdmissionMiddleware(req, res, next) {
    const admitted = admit(config, req, res)
    if (admitted !== 'answered') next()
  }
  handler.close = () => {
    for (const a of agents) a.destroy()
  }
  return handler
}
