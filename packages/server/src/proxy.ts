import http from 'node:http'
import https from 'node:https'
import type { Request, RequestHandler, Response } from 'express'
import { createProxyMiddleware, proxyEventsPlugin, type Plugin } from 'http-proxy-middleware'
import {
  gatehouseLocals,
  sendProviderError,
  UsageMeter,
  type Logger,
  type Masker,
  type ProviderName,
} from '@gatehouse/core'
import { batchedStage } from './stage'

/** Headers a client sends that never cross to the upstream (and every X-Forwarded-*). */
const STRIP_TO_UPSTREAM = new Set([
  'authorization',
  'proxy-authorization',
  'x-api-key',
  'x-goog-api-key',
  'cookie',
  'forwarded',
  'x-real-ip',
  'via',
  'connection',
  'keep-alive',
  'proxy-connection',
  'upgrade',
  'x-device-fingerprint',
])

/** Headers an upstream sends that never cross to the client. */
const STRIP_TO_CLIENT = new Set([
  'set-cookie',
  'set-cookie2',
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'strict-transport-security',
  'alt-svc',
  'x-device-fingerprint',
])

export interface ProxyTarget {
  provider: ProviderName
  baseUrl: string
}

export interface ProviderProxyOptions {
  target: ProxyTarget
  timeouts: { connect: number; firstByte: number; idle: number }
  masker: Masker
  logger: Logger
  /** Headers to add on every upstream request (device fingerprint). */
  extraHeaders?: () => Record<string, string>
  /**
   * Called in order before headers go out: inject the upstream credential, then write the
   * validated body (request-guard's forwardBody) last.
   */
  onProxyReq?: ReadonlyArray<(proxyReq: http.ClientRequest, req: Request, res: Response) => void>
  /** Called with the upstream status, so a rejected credential can be marked unhealthy. */
  onUpstreamStatus?: (res: Response, status: number) => void
  /** Upstream response headers never copied to the client, on top of the hop-by-hop set. */
  stripResponseHeaders?: readonly string[]
}

/** Per-request proxy state. */
interface Flight {
  proxyReq?: http.ClientRequest
  proxyRes?: http.IncomingMessage
  firstByteTimer?: NodeJS.Timeout
  connectTimer?: NodeJS.Timeout
  idleTimer?: NodeJS.Timeout
  done: boolean
  /** What the response flush stage will do for this response: uncork it, or end it. */
  flush?: 'uncork' | 'end' | undefined
}

/**
 * The response flush stage (see batchedStage): the first chunk of a response is written corked,
 * and the responses of one event-loop turn are uncorked (or ended, when their upstream ended in the
 * same turn) together in the next. Later chunks of a stream are written as they come.
 */
const flushLater = batchedStage<[Flight, http.ServerResponse]>(
  (f, res) => {
    const action = f.flush
    f.flush = undefined
    if (action === 'end') res.end()
    else if (action === 'uncork') res.uncork()
  },
  (_err, _f, res) => void res.destroy(),
)

const codedError = (code: string, message: string): NodeJS.ErrnoException =>
  Object.assign(new Error(message), { code })

const MAX_ERROR_BODY = 256 * 1024

/**
 * The upstream keep-alive agent. No cap on sockets (Node's default; the number of client
 * connections bounds it): a request the agent queued would get its socket only after the proxy's
 * pipe of the client request had ended it, before the gateway could strip the client's headers and
 * write the validated body (it is then refused with a 502 rather than sent).
 */
const AGENT_OPTIONS: http.AgentOptions = { keepAlive: true, maxFreeSockets: 64, scheduling: 'lifo' }

/**
 * Where a request's proxy state lives: a symbol-keyed property of the request rather than a
 * WeakMap keyed by it. Every WeakMap entry for a short-lived request is an ephemeron the garbage
 * collector must trace in each scavenge; measured here, that cost more than the proxying itself.
 */
const FLIGHT = Symbol('gatehouse.flight')
type WithFlight = { [FLIGHT]?: Flight }
const flightOf = (req: http.IncomingMessage): Flight | undefined => (req as WithFlight)[FLIGHT]

/**
 * One provider's proxy: http-proxy-middleware with a keep-alive agent, the target pinned to the
 * configured base_url, header hygiene both ways, connect / first-byte / idle timeouts, responses
 * and SSE streams relayed chunk by chunk while the usage meter reads them, upstream error bodies
 * masked, and a client disconnect closing the upstream request.
 */
export function providerProxy(options: ProviderProxyOptions): { handler: RequestHandler; agent: http.Agent } {
  const target = new URL(options.target.baseUrl)
  const isHttps = target.protocol === 'https:'
  const agent = isHttps
    ? new https.Agent(AGENT_OPTIONS)
    : new http.Agent(AGENT_OPTIONS)
  const { connect, firstByte, idle } = options.timeouts
  const provider = options.target.provider
  const stripExtra = new Set((options.stripResponseHeaders ?? []).map((h) => h.toLowerCase()))

  const clear = (f: Flight): void => {
    if (f.firstByteTimer) clearTimeout(f.firstByteTimer)
    if (f.connectTimer) clearTimeout(f.connectTimer)
    if (f.idleTimer) clearTimeout(f.idleTimer)
  }

  const fail = (req: Request, res: Response, err: NodeJS.ErrnoException): void => {
    const f = flightOf(req)
    if (f) {
      if (f.done) return
      f.done = true
      clear(f)
      f.proxyReq?.destroy()
      f.proxyRes?.destroy()
    }
    const timedOut = err.code === 'GH_CONNECT_TIMEOUT' || err.code === 'GH_FIRST_BYTE_TIMEOUT' || err.code === 'ETIMEDOUT'
    options.logger.warn('upstream request failed', {
      provider,
      request_id: gatehouseLocals(res).requestId,
      code: err.code ?? 'unknown',
    })
    if (res.headersSent) {
      res.destroy()
      return
    }
    sendProviderError(
      res,
      provider,
      timedOut ? 504 : 502,
      { message: timedOut ? `The ${provider} upstream did not answer in time` : `The ${provider} upstream could not be reached` },
    )
  }

  const proxy = createProxyMiddleware<Request, Response>({
    target: target.origin,
    changeOrigin: true,
    xfwd: false,
    agent,
    selfHandleResponse: true,
    followRedirects: false,
    autoRewrite: false,
    // Only the plugin that wires `on` below: the default logger plugin builds a URL for every
    // response to log it, and errors are answered here in the provider's shape.
    ejectPlugins: true,
    plugins: [proxyEventsPlugin as unknown as Plugin<Request, Response>],
    on: {
      proxyReq(proxyReq, req, res) {
        const f = flightOf(req)
        if (!f || f.done) {
          proxyReq.destroy()
          return
        }
        f.proxyReq = proxyReq
        if (proxyReq.headersSent) {
          // Something ended the upstream request before its socket came (the proxy's pipe of a
          // request stream whose 'end' was still pending): its headers are the client's and it has
          // no body. It must never leave: destroyed here, before Node flushes it to the socket.
          proxyReq.destroy(codedError('GH_UPSTREAM_REQUEST_ENDED', 'the upstream request was ended before the gateway prepared it'))
          return
        }
        // One pass over the headers the request carries (names come lower-cased).
        for (const name of proxyReq.getHeaderNames()) {
          if (STRIP_TO_UPSTREAM.has(name) || name.startsWith('x-forwarded-')) proxyReq.removeHeader(name)
        }
        if (options.extraHeaders) for (const [k, v] of Object.entries(options.extraHeaders())) proxyReq.setHeader(k, v)
        const socket = proxyReq.socket
        if (socket && socket.connecting) {
          f.connectTimer = setTimeout(
            () => proxyReq.destroy(codedError('GH_CONNECT_TIMEOUT', 'upstream connect timeout')),
            connect,
          )
          socket.once('connect', () => f.connectTimer && clearTimeout(f.connectTimer))
        }
        for (const hook of options.onProxyReq ?? []) hook(proxyReq, req, res)
      },
      proxyRes(proxyRes, req, res) {
        const f = flightOf(req)
        if (!f || f.done) {
          proxyRes.destroy()
          return
        }
        f.proxyRes = proxyRes
        if (f.firstByteTimer) clearTimeout(f.firstByteTimer)
        const status = proxyRes.statusCode ?? 502
        options.onUpstreamStatus?.(res, status)
        let contentType: string | undefined
        let contentEncoding: string | undefined
        forEachHeader(proxyRes, (name, value) => {
          if (name === 'content-type') contentType = String(value)
          else if (name === 'content-encoding') contentEncoding = String(value)
          if (STRIP_TO_CLIENT.has(name) || stripExtra.has(name)) return
          // The gateway's own X-Request-Id stays; the upstream's is passed under another name.
          const as = name === 'x-request-id' ? 'x-upstream-request-id' : name
          res.setHeader(as, status >= 400 ? maskHeader(value, options.masker) : value)
        })
        res.statusCode = status
        proxyRes.on('error', (err) => fail(req, res, err))

        if (status >= 400) {
          // An upstream error body may echo the credential it received: read it (bounded) and mask it.
          const chunks: Buffer[] = []
          let size = 0
          proxyRes.on('data', (c: Buffer) => {
            size += c.length
            if (size <= MAX_ERROR_BODY) chunks.push(c)
          })
          proxyRes.on('end', () => {
            f.done = true
            clear(f)
            const body = Buffer.from(options.masker.text(Buffer.concat(chunks).toString('utf8')))
            res.removeHeader('content-encoding')
            res.setHeader('content-length', body.length)
            res.end(body)
          })
          return
        }

        const meter = new UsageMeter(contentType)
        const idleTimer = setTimeout(() => {
          options.logger.warn('upstream stream idle, closing', { provider, request_id: gatehouseLocals(res).requestId })
          f.done = true
          proxyRes.destroy()
          res.destroy()
        }, idle)
        f.idleTimer = idleTimer
        const encoded = contentEncoding !== undefined && contentEncoding !== 'identity'
        if (contentType?.includes('text/event-stream')) res.flushHeaders()
        // Relayed chunk by chunk with backpressure, by hand rather than with pipe(): one 'data'
        // listener does the relay, the meter and the idle timer (pipe() adds its own listeners to
        // both streams on every response). A client that goes away ends the upstream response
        // through the 'close' handler of providerProxyMiddleware.
        const resume = (): void => void proxyRes.resume()
        let first = true
        proxyRes.on('data', (chunk: Buffer) => {
          idleTimer.refresh()
          if (!encoded) meter.push(chunk)
          if (first) {
            first = false
            res.cork()
            f.flush = 'uncork'
            flushLater(f, res)
          }
          if (!res.write(chunk)) {
            proxyRes.pause()
            res.once('drain', resume)
          }
        })
        proxyRes.on('end', () => {
          f.done = true
          clear(f)
          const usage = meter.finish()
          if (usage) gatehouseLocals(res).usage = usage
          // Still corked (it began this turn): the flush stage ends it, headers, body and end in
          // one write.
          if (f.flush === 'uncork') f.flush = 'end'
          else res.end()
        })
      },
      error(err, req, res) {
        if (res instanceof http.ServerResponse) fail(req, res as Response, err as NodeJS.ErrnoException)
      },
    },
  })

  const handler: RequestHandler = function providerProxyMiddleware(req, res, next) {
    const f: Flight = { done: false }
    ;(req as WithFlight)[FLIGHT] = f
    f.firstByteTimer = setTimeout(() => fail(req, res, codedError('GH_FIRST_BYTE_TIMEOUT', 'first byte timeout')), firstByte)
    res.on('close', () => {
      // The client went away (or the response ended): never leave the upstream request running.
      if (!f.done) {
        f.done = true
        clear(f)
        f.proxyReq?.destroy()
        f.proxyRes?.destroy()
      }
    })
    void proxy(req, res, next)
  }
  return { handler, agent }
}

/**
 * Each response header once, lower-cased, with its value. Read from rawHeaders, so Node never
 * builds the headers object, unless a name repeats: then from that object, which joins or drops
 * the repeats by Node's rules (one Content-Length, Set-Cookie as a list).
 */
function forEachHeader(msg: http.IncomingMessage, fn: (name: string, value: string | string[]) => void): void {
  const raw = msg.rawHeaders
  const names: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    if (names.includes(name)) {
      const headers = msg.headers
      for (const n in headers) {
        const v = headers[n]
        if (v !== undefined) fn(n, v)
      }
      return
    }
    names.push(name)
  }
  for (let i = 0; i < names.length; i++) fn(names[i]!, raw[2 * i + 1]!)
}

function maskHeader(value: string | string[] | number, masker: Masker): string | string[] | number {
  if (typeof value === 'number') return value
  return Array.isArray(value) ? value.map((v) => masker.text(v)) : masker.text(value)
}
