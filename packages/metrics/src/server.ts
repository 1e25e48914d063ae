import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { GatehouseError, hostGuard, isLoopbackBind } from '@gatehouse/core'
import { MetricsErrorCodes } from './errors'
import { PKG } from './options'
import { resolveMetricsServerConfig, type MetricsServerOptions } from './server-options'

/** A running metrics listener. */
export interface MetricsServer {
  /** `http://127.0.0.1:9090/metrics` */
  readonly url: string
  readonly port: number
  /** Stop listening and end open connections. */
  close(): Promise<void>
}

const MISDIRECTED = 'Misdirected Request: this listener answers only its own host names\n'

/**
 * Serve the metrics on their own listener (not the gateway's port): `GET`/`HEAD <path>` answers
 * the exposition text, other methods 405, other paths 404; on loopback, a Host that is not an IP
 * literal, `localhost` or one of `allowedHosts` gets 421. Loopback by default. Rejects with
 * GH_METRICS_LISTEN_FAILED when the address cannot be bound.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const config = resolveMetricsServerConfig(options)
  // Loopback only (DNS rebinding): a Host naming something else than this host is refused, so a
  // web page whose name was made to resolve to 127.0.0.1 cannot read the metrics. Built once here.
  const hostOk = isLoopbackBind(config.host) ? hostGuard({ allowedHosts: config.allowedHosts }) : undefined
  const server = http.createServer((req, res) => {
    res.setHeader('Cache-Control', 'no-store')
    res.setHeader('X-Content-Type-Options', 'nosniff')
    if (hostOk && !hostOk(req.headers.host)) {
      res.writeHead(421, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': MISDIRECTED.length, Connection: 'close' })
      res.end(req.method === 'HEAD' ? undefined : MISDIRECTED)
      return
    }
    const path = (req.url ?? '/').split('?')[0]
    if (path !== config.path) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Not Found\n')
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('Method Not Allowed\n')
      return
    }
    config.metrics.render().then(
      (body) => {
        res.writeHead(200, { 'Content-Type': config.metrics.contentType })
        res.end(req.method === 'HEAD' ? undefined : body)
      },
      (err: unknown) => {
        config.logger.error(`${PKG}: rendering the metrics failed`, { error: err instanceof Error ? err.message : String(err) })
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Internal Server Error\n')
      },
    )
  })
  server.requestTimeout = 10_000
  server.headersTimeout = 5_000
  // Node closes a connection over the cap before it is read and says so in 'drop': logged once a minute.
  server.maxConnections = config.maxConnections
  let lastDropLog = 0
  server.on('drop', (data?: { remoteAddress?: string }) => {
    const now = Date.now()
    if (now - lastDropLog < 60_000) return
    lastDropLog = now
    config.logger.warn(`${PKG}: the metrics listener holds ${config.maxConnections} connections (maxConnections): new ones are closed`, {
      remote: data?.remoteAddress ?? 'unknown',
    })
  })
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(
        new GatehouseError(
          MetricsErrorCodes.GH_METRICS_LISTEN_FAILED,
          `${PKG}: cannot listen on ${config.host}:${config.port} (${err.code ?? err.message})`,
          500,
          { cause: err },
        ),
      )
    }
    server.once('error', onError)
    server.listen(config.port, config.host, () => {
      server.removeListener('error', onError)
      resolve()
    })
  })
  server.on('error', (err) => config.logger.error(`${PKG}: metrics listener error`, { error: err.message }))
  if (!isLoopbackBind(config.host)) {
    config.logger.warn(`${PKG}: metrics are served on ${config.host}, not loopback: anyone who can reach it sees them`, {
      host: config.host,
    })
  }
  const { port } = server.address() as AddressInfo
  const hostPart = config.host.includes(':') ? `[${config.host}]` : config.host
  return Object.freeze({
    url: `http://${hostPart}:${port}${config.path}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  })
}
