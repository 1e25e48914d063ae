import http from 'node:http'
import https from 'node:https'
import { join, resolve as resolvePath } from 'node:path'
import type { AddressInfo, Socket } from 'node:net'
import express, { type ErrorRequestHandler, type Express, type RequestHandler, type Router } from 'express'
import {
  createMasker,
  detectProvider,
  emitSecurityEvent,
  gatehouseLocals,
  isProviderName,
  normalizeIp,
  parseDuration,
  resolveProviderRoute,
  sendProviderError,
  type Logger,
  type Masker,
  type ProviderName,
  type SecurityEvent,
  type SecurityEventHandler,
} from '@gatehouse/core'
import { clientAuth, FileKeyStore, loadOrCreateSalt } from '@gatehouse/client-auth'
import type { GatehouseConfig } from './config/types'
import { providerProxy, type UpstreamCredential } from './proxy'
import { requestId } from './request-id'
import { pathGuard } from './path-guard'
import { managementRouter, type ManagementContext } from './management'
import { secureContextOptions, watchCertificates, type TlsSettings } from './tls'

/** State an operator can change at run time (management API). */
export interface GatewayRuntime {
  maintenance: { enabled: boolean; message: string }
  /** Providers switched off, with the message to answer. */
  disabledProviders: Map<ProviderName, string>
  shuttingDown: boolean
}

export interface GatewayOptions {
  logger: Logger
  /** Event sinks (audit log, metrics); each gets every event. */
  eventSinks?: SecurityEventHandler[]
  /** Directory that relative paths in the config are resolved against. @default process.cwd() */
  cwd?: string
  /** Extra management routes (mounted behind the management key). */
  managementExtensions?: (router: Router, ctx: ManagementContext) => void
}

export interface Gateway {
  app: Express
  server: http.Server | https.Server
  runtime: GatewayRuntime
  config: GatehouseConfig
  masker: Masker
  keyStore: FileKeyStore
  /** Emit an event to every sink. */
  emit: SecurityEventHandler
  listen(): Promise<{ url: string; port: number }>
  /** Stop accepting, let in-flight requests finish within `graceMs`, then end the rest. */
  close(graceMs?: number): Promise<void>
}

/** An upstream credential from a static provider key (`providers.<name>.api_key`). */
export function staticCredential(provider: ProviderName, key: string): UpstreamCredential {
  switch (provider) {
    case 'claude':
      return key.startsWith('sk-ant-oat')
        ? { headers: { authorization: `Bearer ${key}`, 'anthropic-beta': 'oauth-2025-04-20' } }
        : { headers: { 'x-api-key': key } }
    case 'openai':
      return { headers: { authorization: `Bearer ${key}` } }
    case 'gemini':
      return { headers: { 'x-goog-api-key': key } }
  }
}

/** Every secret the config holds, so the masker can find them in any text. */
function configSecrets(c: GatehouseConfig): string[] {
  const out = [c.auth.key_salt, c.auth.encryption.key, ...(c.auth.encryption.previous_keys ?? []), c.management.secret_key, c.notify.webhook_url, c.logging.audit.key, ...c.auth.honeytokens]
  for (const p of Object.values(c.providers)) out.push(p?.api_key)
  return out.filter((s): s is string => typeof s === 'string' && s.length >= 8)
}

/**
 * Build the gateway: the layers in SPEC §3 order in front of one proxy per configured provider.
 * Nothing listens until `listen()`.
 */
export function createGateway(config: GatehouseConfig, options: GatewayOptions): Gateway {
  const cwd = options.cwd ?? process.cwd()
  const logger = options.logger
  const masker = createMasker({ knownSecrets: configSecrets(config) })
  const sinks = options.eventSinks ?? []
  const emit: SecurityEventHandler = (event: SecurityEvent) => {
    for (const sink of sinks) {
      try {
        sink(event)
      } catch (err) {
        logger.error('event sink failed', { error: String(err) })
      }
    }
  }
  const runtime: GatewayRuntime = {
    maintenance: { enabled: config.server.maintenance_mode, message: config.server.message },
    disabledProviders: new Map(),
    shuttingDown: false,
  }
  const authDir = resolvePath(cwd, config.auth.dir)
  const salt = config.auth.key_salt ?? loadOrCreateSalt(authDir)
  const keyStore = new FileKeyStore({ file: join(authDir, 'client-keys.json'), salt, logger })

  const timeouts = {
    connect: parseDuration(config.server.timeouts.connect),
    firstByte: parseDuration(config.server.timeouts.first_byte),
    idle: parseDuration(config.server.timeouts.idle),
  }
  const proxies = new Map<ProviderName, RequestHandler>()
  const agents: http.Agent[] = []
  for (const [name, pc] of Object.entries(config.providers)) {
    if (!pc || !pc.enabled || !isProviderName(name)) continue
    const { handler, agent } = providerProxy({ target: { provider: name, baseUrl: pc.base_url }, timeouts, masker, logger })
    proxies.set(name, handler)
    agents.push(agent)
  }

  const app = express()
  app.disable('x-powered-by')
  app.disable('etag')
  app.set('query parser', false)
  app.set('trust proxy', config.server.trust_proxy)

  // 1. request id, and no ambiguous paths past this point
  app.use(requestId())
  app.use(pathGuard())
  app.use(function shutdownMiddleware(_req, res, next) {
    if (runtime.shuttingDown) res.setHeader('Connection', 'close')
    next()
  })
  // 2. security headers (baseline until @gatehouse/hsts is wired)
  app.use(function baselineHeadersMiddleware(_req, res, next) {
    res.setHeader('X-Content-Type-Options', 'nosniff')
    next()
  })
  // Health: no auth, no data.
  app.get('/healthz', (_req, res) => {
    res.setHeader('Cache-Control', 'no-store')
    res.json({ status: 'ok' })
  })
  app.get('/readyz', (_req, res) => {
    res.setHeader('Cache-Control', 'no-store')
    const ready = keyStore.lastError === undefined && !runtime.shuttingDown
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready' })
  })
  // Management API: its own key, loopback only by default; off without a secret key.
  if (config.management.enabled && config.management.secret_key) {
    app.use(
      '/v0/management',
      managementRouter({
        secretKey: config.management.secret_key,
        allowRemote: config.management.allow_remote,
        runtime,
        keyStore,
        emit,
        logger,
        ...(options.managementExtensions ? { extend: options.managementExtensions } : {}),
      }),
    )
  }
  // 3. maintenance
  app.use(function maintenanceMiddleware(req, res, next) {
    if (!runtime.maintenance.enabled) return next()
    sendProviderError(res, detectProvider(req), 503, { message: runtime.maintenance.message }, { 'Retry-After': 300 })
  })
  // 6. client auth
  if (config.auth.client_auth.enabled) {
    app.use(
      clientAuth({
        store: keyStore,
        honeytokens: config.auth.honeytokens,
        onEvent: emit,
        logger,
      }),
    )
  }
  // Routing, kill switch, credential
  app.use(function routeMiddleware(req, res, next) {
    const route = resolveProviderRoute(req.path)
    if (!route) return next()
    const pc = config.providers[route.provider]
    const proxy = proxies.get(route.provider)
    if (!pc || !proxy) {
      sendProviderError(res, route.provider, 404, { message: `Provider ${route.provider} is not configured on this gateway` })
      return
    }
    const off = runtime.disabledProviders.get(route.provider)
    if (off !== undefined) {
      sendProviderError(res, route.provider, 503, { message: off }, { 'Retry-After': 60 })
      return
    }
    const locals = gatehouseLocals(res)
    locals.provider = route.provider
    if (!locals.upstreamCredential) {
      if (!pc.api_key) {
        emitSecurityEvent(emit, {
          event_type: 'security_violation',
          provider: route.provider,
          ip: normalizeIp(req.ip),
          ...(locals.requestId ? { request_id: locals.requestId } : {}),
          ...(locals.clientKeyId ? { user_id: locals.clientKeyId } : {}),
          result: 'no_upstream_credential',
        })
        sendProviderError(res, route.provider, 503, {
          message: `No upstream credential is configured for provider ${route.provider}`,
        })
        return
      }
      locals.upstreamCredential = staticCredential(route.provider, pc.api_key)
    }
    const q = req.url.indexOf('?')
    req.url = route.upstreamPath + (q === -1 ? '' : req.url.slice(q))
    proxy(req, res, next)
  })
  app.use(function notFoundMiddleware(req, res) {
    sendProviderError(res, detectProvider(req), 404, { message: 'Unknown route' })
  })
  const onError: ErrorRequestHandler = (err: unknown, req, res, _next) => {
    const status = typeof (err as { statusCode?: unknown })?.statusCode === 'number' ? (err as { statusCode: number }).statusCode : 500
    logger.error('request failed', { request_id: gatehouseLocals(res).requestId, error: masker.text(String(err)) })
    sendProviderError(res, detectProvider(req), status >= 400 && status < 600 ? status : 500, {
      message: status < 500 ? 'Bad request' : 'Internal gateway error',
    })
  }
  app.use(onError)

  let tlsSettings: TlsSettings | undefined
  if (config.server.tls.enabled) {
    tlsSettings = {
      certFile: resolvePath(cwd, config.server.tls.cert_file ?? ''),
      keyFile: resolvePath(cwd, config.server.tls.key_file ?? ''),
      minVersion: config.server.tls.min_version,
      cipherSuites: config.server.tls.cipher_suites,
    }
  }
  const server = createExpressServer(app, tlsSettings ? secureContextOptions(tlsSettings) : undefined)
  const certWatch = tlsSettings ? watchCertificates(server as https.Server, tlsSettings, logger) : undefined
  server.keepAliveTimeout = 65_000
  server.headersTimeout = 66_000
  const inflight = new Set<http.ServerResponse>()
  server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    inflight.add(res)
    res.on('close', () => inflight.delete(res))
  })

  const gateway: Gateway = {
    app,
    server,
    runtime,
    config,
    masker,
    keyStore,
    emit,
    listen: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject)
        server.listen(config.server.port, config.server.host, () => {
          server.off('error', reject)
          const { port } = server.address() as AddressInfo
          const host = config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host
          resolve({ url: `${tlsSettings ? 'https' : 'http'}://${host}:${port}`, port })
        })
      }),
    close: async (graceMs = parseDuration(config.server.timeouts.shutdown_grace)) => {
      runtime.shuttingDown = true
      certWatch?.close()
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeIdleConnections()
      const deadline = Date.now() + graceMs
      while (inflight.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25))
      server.closeAllConnections()
      await closed
      for (const a of agents) a.destroy()
    },
  }
  return gateway
}

/**
 * An HTTP server whose requests and responses are built with Express's prototypes from the
 * start. Express re-prototypes `req` and `res` on every request otherwise
 * (`Object.setPrototypeOf`), which deoptimises everything after it; with the right prototype in
 * place that call is a no-op.
 */
export function createExpressServer(app: Express, tlsOptions?: https.ServerOptions): http.Server | https.Server {
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
  return tlsOptions ? https.createServer({ ...tlsOptions, ...prototypes }, app) : http.createServer(prototypes, app)
}
