import express, { type ErrorRequestHandler } from 'express'
import { detectProvider, gatehouseLocals, sendProviderError } from '@gatehouse/core'
import { composeLayers } from '@gatehouse/proxy'
import type { GatehouseConfig } from '../config/types'
import { providersWithoutCredential } from '../layers/credential-check'
import { mountManagement } from '../management/mount'
import { mountHealth } from './health'
import { createHttpServer } from './http-server'
import { buildLayers } from './layers'
import { createLifecycle } from './lifecycle'
import { createServices } from './services'
import type { Gateway, GatewayOptions } from './types'

export type { Gateway, GatewayOptions, GatewayRuntime } from './types'
export { configSecrets, resolveGeneratedSecrets } from './secrets'
export { LAYERS, type LayerSpec } from './layers'

/**
 * Build the gateway: the layers of the table in ./layers (SPEC §3 order) in front of one proxy per
 * configured provider, the health and management routes between the two stages. Nothing listens
 * until `listen()`.
 */
export function createGateway(config: GatehouseConfig, options: GatewayOptions): Gateway {
  const s = createServices(config, options)
  const { front, admission } = buildLayers(s)

  const app = express()
  app.disable('x-powered-by')
  app.disable('etag')
  app.set('query parser', false)
  app.set('trust proxy', config.server.trust_proxy)
  // Each stage is composed into one layer (see composeLayers); health and management sit between.
  const frontLayer = composeLayers(front)
  const admissionLayer = composeLayers(admission)
  app.use(frontLayer)
  mountHealth(app, s)
  mountManagement(app, s)
  app.use(admissionLayer)
  const onError: ErrorRequestHandler = (err: unknown, req, res, _next) => {
    const status = typeof (err as { statusCode?: unknown })?.statusCode === 'number' ? (err as { statusCode: number }).statusCode : 500
    s.logger.error('request failed', { request_id: gatehouseLocals(res).requestId, error: s.masker.text(String(err)) })
    sendProviderError(res, detectProvider(req), status >= 400 && status < 600 ? status : 500, {
      message: status < 500 ? 'Bad request' : 'Internal gateway error',
    })
  }
  app.use(onError)

  const http = createHttpServer(config, s.cwd, app, [frontLayer, admissionLayer], onError, s.logger, s.events.emit)
  const lifecycle = createLifecycle(s, http)
  return {
    app,
    server: http.server,
    runtime: s.state.runtime,
    config,
    masker: s.masker,
    keyStore: s.state.keyStore,
    control: s.state.control,
    vault: s.upstream.vault,
    ipFilter: s.ipFilter,
    audit: s.events.audit,
    metrics: s.events.metrics,
    storage: s.events.storage,
    emit: s.events.emit,
    metricsUrl: lifecycle.metricsUrl,
    providersWithoutCredential: () => providersWithoutCredential(config, s.upstream.vault, s.providers),
    listen: lifecycle.listen,
    close: lifecycle.close,
  }
}
