import type http from 'node:http'
import type https from 'node:https'
import { resolve as resolvePath } from 'node:path'
import type { ErrorRequestHandler, Express, RequestHandler } from 'express'
import { detectProvider, sendProviderError, type Logger, type SecurityEventHandler } from '@gatehouse/core'
import { createPipelineServer } from '@gatehouse/proxy'
import type { GatehouseConfig } from '../config/types'
import { secureContextOptions, watchCertificates, type TlsSettings } from '../tls'
import { limitConnections } from './connections'

export interface GatewayHttpServer {
  server: http.Server | https.Server
  tls: TlsSettings | undefined
  /** Stops watching the certificate files (TLS only). */
  stopWatching(): void
  /** Responses not yet closed, for the shutdown drain. */
  inflight(): number
}

/**
 * The listener. The one performance seam (docs/performance.md): provider requests run the same two
 * composed layers without Express's router, on a server built with Express's prototypes.
 */
export function createHttpServer(config: GatehouseConfig, cwd: string, app: Express, layers: RequestHandler[], onError: ErrorRequestHandler, logger: Logger, emit: SecurityEventHandler): GatewayHttpServer {
  const tls: TlsSettings | undefined = config.server.tls.enabled
    ? {
        certFile: resolvePath(cwd, config.server.tls.cert_file ?? ''),
        keyFile: resolvePath(cwd, config.server.tls.key_file ?? ''),
        minVersion: config.server.tls.min_version,
        cipherSuites: config.server.tls.cipher_suites,
      }
    : undefined
  const server = createPipelineServer({
    app,
    layers,
    onError: (err, req, res) => onError(err, req, res, () => undefined),
    notFound: (req, res) => sendProviderError(res, detectProvider(req), 404, { message: 'Unknown route' }),
    ...(tls ? { tls: secureContextOptions(tls) } : {}),
  })
  const watch = tls ? watchCertificates(server as https.Server, tls, logger) : undefined
  server.keepAliveTimeout = 65_000
  server.headersTimeout = 66_000
  const limits = limitConnections(server, config, emit)
  logger.info(`accepting at most ${limits.max} client connections, ${limits.perIp} from one address (server.security.connections)`)
  // A count, not a Set of the responses: a long-lived collection that every request enters and
  // leaves makes each young-generation garbage collection walk it.
  let inflight = 0
  const settled = (): void => {
    inflight--
  }
  server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    inflight++
    res.on('close', settled)
  })
  return { server, tls, stopWatching: () => watch?.close(), inflight: () => inflight }
}
