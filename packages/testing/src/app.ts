import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from 'express'
import { isGatehouseError, type GatehouseError, type SecurityEvent, type SecurityEventHandler } from '@gatehouse/core'

/**
 * A real Express app with the given middlewares, then a handler that answers
 * `200 {"ok":true,"locals":…}` and an error handler that renders a GatehouseError as
 * `{"code","message"}` with its statusCode (any other error: 500 `{"code":"INTERNAL"}`).
 */
export function createTestApp(...middlewares: RequestHandler[]): Express {
  const app = express()
  app.disable('x-powered-by')
  for (const mw of middlewares) app.use(mw)
  app.use((req, res) => {
    res.json({ ok: true, method: req.method, path: req.path, locals: res.locals.gatehouse ?? null })
  })
  const onError: ErrorRequestHandler = (err: unknown, _req, res, _next) => {
    if (isGatehouseError(err)) {
      res.status(err.statusCode).json({ code: err.code, message: err.message })
      return
    }
    res.status(500).json({ code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) })
  }
  app.use(onError)
  return app
}

/** Collects the security events a middleware emits. */
export function collectEvents(): { events: SecurityEvent[]; onEvent: SecurityEventHandler } {
  const events: SecurityEvent[] = []
  return { events, onEvent: (e) => void events.push(e) }
}

export interface RunningServer<S extends net.Server = http.Server> {
  server: S
  port: number
  /** `http://127.0.0.1:<port>` */
  url: string
  close(): Promise<void>
}

/**
 * Listen on 127.0.0.1 (or `host`) and an ephemeral port: a request handler (served over HTTP) or a
 * server of any kind (https, net); `close()` also ends the kept-alive connections of http(s) servers.
 */
export function listen(handler: http.RequestListener | http.Server, host?: string): Promise<RunningServer>
export function listen<S extends net.Server>(server: S, host?: string): Promise<RunningServer<S>>
export async function listen(
  handler: http.RequestListener | net.Server,
  host = '127.0.0.1',
): Promise<RunningServer<net.Server>> {
  const server = handler instanceof net.Server ? handler : http.createServer(handler)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => resolve())
  })
  const { port } = server.address() as AddressInfo
  const hostPart = host.includes(':') ? `[${host}]` : host
  return {
    server,
    port,
    url: `http://${hostPart}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        ;(server as Partial<Pick<http.Server, 'closeAllConnections'>>).closeAllConnections?.()
        server.close(() => resolve())
      }),
  }
}

/** The GatehouseError that `fn` throws; throws itself when `fn` returns or throws anything else. */
export function thrownGatehouseError(fn: () => unknown): GatehouseError {
  try {
    fn()
  } catch (err) {
    if (isGatehouseError(err)) return err
    throw new Error(`expected a GatehouseError, got ${String(err)}`, { cause: err })
  }
  throw new Error('expected a throw')
}
