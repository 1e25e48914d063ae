import http from 'node:http'
import https from 'node:https'
import type { Socket } from 'node:net'
import type { Express, Request, RequestHandler, Response } from 'express'

/**
 * The performance seam (docs/performance.md states each invariant and the test that pins it).
 * Everything here exists to do less per request than Express's router would, and is the only code
 * of the project that knows how Express builds its requests. `GATEHOUSE_PIPELINE=express` turns
 * the seam off: every request then goes through the Express app as any app's would.
 */

/**
 * Run middlewares in order as one Express layer. Express's router matches a path and builds a
 * params object for every layer a request passes; the gateway's layers all apply to every path, so
 * composing them spares the provider path those rounds. Semantics follow Express's router:
 * `next(err)` and a throw skip to the error handler, and so does a rejected promise returned by a
 * middleware.
 */
export function composeLayers(layers: readonly RequestHandler[]): RequestHandler {
  const stack = [...layers]
  return function composedLayers(req, res, out) {
    let i = 0
    const next = (err?: unknown): void => {
      if (err !== undefined && err !== null) {
        out(err)
        return
      }
      const layer = stack[i++]
      if (layer === undefined) {
        out()
        return
      }
      try {
        const result = layer(req, res, next) as unknown
        if (result !== undefined && typeof (result as Promise<unknown> | null)?.then === 'function') {
          ;(result as Promise<unknown>).then(undefined, (e: unknown) => out(e ?? new Error('rejected')))
        }
      } catch (e) {
        out(e)
      }
    }
    next()
  }
}

export interface PipelineServerOptions {
  /** The whole app: health, dashboard and management routes, and the same layers for embedding. */
  app: Express
  /** The provider path's layers, in order, each one composed (see composeLayers). */
  layers: readonly RequestHandler[]
  /** What the app's error handler does. */
  onError: (err: unknown, req: Request, res: Response) => void
  /** What the app answers when no layer answered. */
  notFound: (req: Request, res: Response) => void
  tls?: https.ServerOptions
  /** Use the seam. @default true unless GATEHOUSE_PIPELINE=express */
  fastPath?: boolean
}

/** Paths the app's routes own (matched case-insensitively, as Express matches them). */
const isAppPath = (url: string): boolean => {
  if (url.charCodeAt(0) !== 0x2f) return true // absolute or asterisk form: the app decides
  const head = url.slice(0, 8).toLowerCase()
  return head.startsWith('/healthz') || head.startsWith('/readyz') || head.startsWith('/v0')
}

/**
 * An HTTP(S) server for the gateway. Its requests and responses are built with Express's
 * prototypes from the start (Express re-prototypes them on every request otherwise, which
 * deoptimises what follows), and provider requests run `layers` directly instead of through the
 * app's router: the same functions in the same order with the same error and not-found handling.
 */
export function createPipelineServer(options: PipelineServerOptions): http.Server | https.Server {
  const { app } = options
  const fast = options.fastPath ?? process.env.GATEHOUSE_PIPELINE !== 'express'
  if (!fast) return options.tls ? https.createServer(options.tls, app) : http.createServer(app)
  const layers = [...options.layers]
  const providerPath = (req: Request, res: Response): void => {
    const done = (err?: unknown): void => {
      if (err !== undefined && err !== null) options.onError(err, req, res)
      else options.notFound(req, res)
    }
    // What Express's app.handle sets before its router runs.
    req.res = res
    res.req = req
    req.originalUrl = req.url
    res.locals = Object.create(null) as Response['locals']
    let i = 0
    const next = (err?: unknown): void => {
      if (err !== undefined && err !== null) return done(err)
      const layer = layers[i++]
      if (layer === undefined) return done()
      try {
        layer(req, res, next)
      } catch (e) {
        done(e)
      }
    }
    next()
  }
  const listener = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (isAppPath(req.url ?? '')) app(req, res)
    else providerPath(req as Request, res as Response)
  }
  function GatehouseRequest(this: http.IncomingMessage, socket: Socket) {
    http.IncomingMessage.call(this, socket)
  }
  GatehouseRequest.prototype = app.request
  function GatehouseResponse(this: http.ServerResponse, req: http.IncomingMessage) {
    http.ServerResponse.call(this, req)
  }
  GatehouseResponse.prototype = app.response
  const prototypes = {
    IncomingMessage: GatehouseRequest as unknown as typeof http.IncomingMessage,
    ServerResponse: GatehouseResponse as unknown as typeof http.ServerResponse,
  }
  return options.tls ? https.createServer({ ...options.tls, ...prototypes }, listener) : http.createServer(prototypes, listener)
}
