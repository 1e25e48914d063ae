import type http from 'node:http'
import type https from 'node:https'
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve as resolvePath } from 'node:path'
import type { AddressInfo } from 'node:net'
import express, { type ErrorRequestHandler, type Express, type RequestHandler, type Response, type Router } from 'express'
import {
  createMasker,
  detectProvider,
  emitSecurityEvent,
  gatehouseLocals,
  isLoopback,
  isProviderName,
  normalizeIp,
  loadOrCreateSecretFile,
  parseDuration,
  resolveProviderRoute,
  sendProviderError,
  type Logger,
  type Masker,
  type ProviderName,
  type SecurityEvent,
  type SecurityEventHandler,
} from '@gatehouse/core'
import { clientAuth, FileKeyStore, keyModelScope, loadOrCreateSalt, RedisKeyStore, type ManagedKeyStore } from '@gatehouse/client-auth'
import { ipFilter, RedisDenylistStore, type IpFilterMiddleware } from '@gatehouse/ip-filter'
import { hsts } from '@gatehouse/hsts'
import {
  keyLimits,
  LocalFallbackStore,
  memoryStore as rateLimitMemoryStore,
  quota,
  rateLimit,
  redisStore as rateLimitRedisStore,
  tokenLimit,
  type RateLimitStore,
} from '@gatehouse/rate-limit'
import { requestGuard } from '@gatehouse/request-guard'
import { createCredentialVault, credentialInjection, upstreamCredentialOf, type CredentialVault } from '@gatehouse/credential-vault'
import { composeLayers, createPipelineServer, gatehouseProxy } from '@gatehouse/proxy'
import { deviceFingerprint } from '@gatehouse/device-fingerprint'
import { accessLog, createAuditLogger, type AuditLogger, type AuditLogOptions, type AuditSinkOptions } from '@gatehouse/audit-log'
import {
  createAlertEngine,
  createMetrics,
  RedisAlertStore,
  startMetricsServer,
  type GatehouseMetrics,
  type MetricsServer,
} from '@gatehouse/metrics'
import { createEventBuffer, createStorageSink, dashboardRouter, type StorageSink } from '@gatehouse/storage'
import type { GatehouseConfig } from './config/types'
import { diagnose } from './doctor'
import { providersWithoutCredential, unconfiguredProviderGuard } from './credential-check'
import { requestId } from './request-id'
import { pathGuard } from './path-guard'
import { hostGuardLayer } from './host-guard'
import { managementRouter, refusePreflight, type ManagementContext } from './management'
import { mountCredentialRoutes, mountDenylistRoutes } from './management-routes'
import { createRedisClient } from './redis'
import { localRuntimeControl, sharedRuntimeControl, type RuntimeControl } from './shared-runtime'
import { hstsAdapter, ipFilterAdapter, jwtAdapter, requestGuardAdapter } from './config/adapters'
import { startReplicaHeartbeat } from './replicas'
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
  /** Event sinks besides the audit log, metrics and alerts; each gets every event. */
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
  keyStore: ManagedKeyStore
  /** How maintenance and the kill switch change: in this process, or for every replica. */
  control: RuntimeControl
  vault: CredentialVault
  ipFilter: IpFilterMiddleware
  audit: AuditLogger | undefined
  metrics: GatehouseMetrics | undefined
  storage: StorageSink | undefined
  /** Emit an event to every sink. */
  emit: SecurityEventHandler
  /** The metrics listener's URL once listening (undefined when metrics are off). */
  metricsUrl(): string | undefined
  /** The providers served with no credential at all (not ready; their requests get 403). */
  providersWithoutCredential(): ProviderName[]
  listen(): Promise<{ url: string; port: number }>
  /** Stop accepting, let in-flight requests finish within `graceMs`, then end the rest. */
  close(graceMs?: number): Promise<void>
}

/** Every secret the config holds, so the masker can find them in any text. */
export function configSecrets(c: GatehouseConfig): string[] {
  const out = [c.auth.key_salt, c.auth.encryption.key, ...(c.auth.encryption.previous_keys ?? []), c.management.secret_key, c.notify.webhook_url, c.logging.audit.key, ...c.auth.honeytokens, c.store.url, c.storage.url]
  for (const p of Object.values(c.providers)) out.push(p?.api_key)
  return out.filter((s): s is string => typeof s === 'string' && s.length >= 8)
}

/** Secrets the gateway keeps in files of the auth directory when the config does not give them. */
export function resolveGeneratedSecrets(config: GatehouseConfig, authDir: string): { salt: string; encryptionKey: string | undefined; auditKey: string } {
  return {
    salt: config.auth.key_salt ?? loadOrCreateSalt(authDir),
    encryptionKey: config.auth.encryption.enabled
      ? (config.auth.encryption.key ?? loadOrCreateSecretFile(join(authDir, '.encryption-key')))
      : undefined,
    auditKey: config.logging.audit.key ?? loadOrCreateSecretFile(join(authDir, '.audit-key')),
  }
}

/**
 * Build the gateway: the layers in SPEC §3 order in front of one proxy per configured provider.
 * Nothing listens until `listen()`.
 */
export function createGateway(config: GatehouseConfig, options: GatewayOptions): Gateway {
  const cwd = options.cwd ?? process.cwd()
  const logger = options.logger
  const knownSecrets = configSecrets(config)
  const masker = createMasker({ knownSecrets })
  const runtime: GatewayRuntime = {
    maintenance: { enabled: config.server.maintenance_mode, message: config.server.message },
    disabledProviders: new Map(),
    shuttingDown: false,
  }
  const authDir = resolvePath(cwd, config.auth.dir)
  const secrets = resolveGeneratedSecrets(config, authDir)
  // Distributed mode: one Redis connection for every store; client keys, maintenance and the kill
  // switch are then shared by every replica (cluster mode), the rest of the policy by config.
  const redis = config.store.type === 'redis' && config.store.url ? createRedisClient(config.store.url, logger) : undefined
  const prefix = config.store.key_prefix
  const keyStore: ManagedKeyStore & { close(): unknown } = redis
    ? new RedisKeyStore({ client: redis, salt: secrets.salt, prefix, maxStaleMs: parseDuration(config.store.max_staleness), logger })
    : new FileKeyStore({ file: join(authDir, 'client-keys.json'), salt: secrets.salt, logger })
  const control = redis ? sharedRuntimeControl(runtime, { client: redis, prefix, logger }) : localRuntimeControl(runtime)
  // The shared copies are checked every second: one not confirmed for 3 s means Redis is out of reach.
  const sharedFresh = (): boolean => control.freshWithin(3000) && (!(keyStore instanceof RedisKeyStore) || keyStore.freshWithin(3000))
  let heartbeat: { stop(): Promise<void> } | undefined
  const providerNames = Object.entries(config.providers)
    .filter(([name, pc]) => pc?.enabled && isProviderName(name))
    .map(([name]) => name as ProviderName)

  // Event sinks: the audit log, metrics and alerts, then the caller's.
  const sinks: SecurityEventHandler[] = []
  const emit: SecurityEventHandler = (event: SecurityEvent) => {
    for (const sink of sinks) {
      try {
        sink(event)
      } catch (err) {
        logger.error('event sink failed', { error: masker.text(String(err)) })
      }
    }
  }
  const audit = config.logging.audit.enabled
    ? createAuditLogger({
        file: resolvePath(cwd, config.logging.audit.file),
        key: secrets.auditKey,
        events: config.logging.audit.events,
        aggregateInterval: config.logging.audit.aggregate_interval,
        ...auditShipping(config, cwd),
        knownSecrets,
        logger,
      })
    : undefined
  if (audit) sinks.push(audit.log)
  const metrics = config.metrics.enabled ? createMetrics({ prefix: config.metrics.prefix, knownSecrets }) : undefined
  if (metrics) sinks.push(metrics.recordEvent)
  // Request storage in PostgreSQL: batched off the request path; a slow or absent database never
  // delays a request (events queue up to a bound, then are counted as dropped).
  const storage =
    config.storage.enabled && config.storage.url
      ? createStorageSink({
          url: config.storage.url,
          storeBodies: config.storage.store_bodies,
          retentionDays: config.storage.retention_days,
          knownSecrets,
          logger,
          onEvent: (e) => emit(e),
        })
      : undefined
  if (storage) sinks.push(storage.record)
  // The dashboard's recent security events and top refusals, kept in memory. Access-log lines
  // (provider_request) stay out: at a thousand requests a second they would leave the dashboard half
  // a second of history, and every request would put one more mid-lived object in the heap.
  const recent = createEventBuffer({})
  sinks.push((event) => {
    if (event.event_type !== 'provider_request') recent.record(event)
  })

  const onStoreError = config.store.on_error
  // The limiters see allow or deny only: under `local` the store itself falls back to this
  // process's share of each limit, so a limiter never meets an unreachable store.
  const limiterOnStoreError = onStoreError === 'deny' ? 'deny' : 'allow'

  // The denylist store is the gateway's (ipf.shutdown() leaves a store it was given alone): its
  // change subscription holds a Redis connection of its own until the gateway closes it.
  const denylistStore = redis ? new RedisDenylistStore({ client: redis, prefix: `${prefix}denylist:`, logger }) : undefined
  const ipf = ipFilter({
    ...ipFilterAdapter.options(config),
    ...(denylistStore ? { store: denylistStore } : {}),
    // The denylist has no share to divide: under `local` each gateway keeps the entries it has.
    onStoreError: limiterOnStoreError,
    onEvent: emit,
    logger,
  })

  // notify_admin needs somewhere to post; without notify.webhook_url such rules are left out, and said so.
  const alertRules = config.alerts.filter((r) => r.action !== 'notify_admin' || config.notify.webhook_url)
  for (const r of config.alerts) {
    if (!alertRules.includes(r)) logger.warn(`alert "${r.name}" is inactive: notify_admin needs notify.webhook_url (or SLACK_WEBHOOK_URL)`)
  }
  const alerts = alertRules.length
    ? createAlertEngine({
        rules: alertRules.map((r) => ({ ...r })),
        notify: config.notify.webhook_url ? { webhookUrl: config.notify.webhook_url } : {},
        // Loopback is always spared; so are the operator's own proxies and the listed addresses.
        neverBlock: [...config.server.security.never_block, ...trustedProxyAddresses(config.server.trust_proxy)],
        onBlockIp: async (b) => {
          await ipf.add(b.ip, { reason: `alert: ${b.reason}`, ttlSeconds: b.ttlSeconds })
          emitSecurityEvent(emit, { event_type: 'config_change', ip: b.ip, result: 'ip_blocked', details: { rule: b.rule, ttl_seconds: b.ttlSeconds } })
        },
        ...(redis ? { store: new RedisAlertStore({ client: redis, prefix: `${prefix}alerts:` }) } : {}),
        logger,
      })
    : undefined
  if (alerts) sinks.push(alerts.recordEvent)
  sinks.push(...(options.eventSinks ?? []))

  const vault = createCredentialVault({
    dir: authDir,
    encryption: {
      enabled: config.auth.encryption.enabled,
      ...(secrets.encryptionKey ? { key: secrets.encryptionKey } : {}),
      ...(config.auth.encryption.previous_keys?.length ? { previousKeys: config.auth.encryption.previous_keys } : {}),
    },
    staticCredentials: Object.fromEntries(providerNames.map((p) => [p, config.providers[p]?.api_key])),
    // The account billed and read comes from the config, never from a client (empty means unset).
    staticAccountHeaders: {
      openai: { 'openai-organization': config.providers.openai?.organization ?? '', 'openai-project': config.providers.openai?.project ?? '' },
      gemini: { 'x-goog-user-project': config.providers.gemini?.user_project ?? '' },
    },
    // Cluster mode: one gateway refreshes an OAuth token, the others use its tokens (encrypted in Redis).
    ...(redis && config.auth.encryption.enabled ? { cluster: { client: redis, prefix } } : {}),
    onEvent: emit,
    logger,
  })
  if (redis && !config.auth.encryption.enabled) logger.warn('cluster mode with auth.encryption off: OAuth refreshes are not coordinated between gateways (the shared tokens would be plaintext in Redis); turn encryption on')
  const fingerprint = config.device_fingerprint.enabled
    ? deviceFingerprint({ dir: authDir, header: config.device_fingerprint.header, onEvent: emit, logger })
    : undefined

  const sharedStore = redis ? rateLimitRedisStore({ client: redis, prefix: `${prefix}rl:`, logger }) : undefined
  const fallbackStore = sharedStore && onStoreError === 'local' ? new LocalFallbackStore({ store: sharedStore, replicas: config.store.replicas, logger }) : undefined
  if (fallbackStore && metrics) metrics.trackRateLimitStore(fallbackStore)
  if (redis && metrics) metrics.trackSharedState({ degraded: () => !sharedFresh() })
  if (metrics) metrics.trackKeyExpiry(keyStore)
  const rlStore: RateLimitStore = fallbackStore ?? sharedStore ?? rateLimitMemoryStore({ quotaFile: join(authDir, 'quota.json'), logger })
  const limiters: Array<RequestHandler & { shutdown?: () => Promise<void> | void }> = []
  const common = { store: rlStore, onStoreError: limiterOnStoreError, onEvent: emit, logger } as const

  const proxy = gatehouseProxy({
    providers: Object.fromEntries(
      providerNames.map((name) => {
        const pc = config.providers[name]!
        return [name, { baseUrl: pc.base_url, ...(pc.endpoints ? { endpoints: pc.endpoints } : {}) }]
      }),
    ),
    credential: (_req, res) => upstreamCredentialOf(res),
    body: (_req, res) => gatehouseLocals(res as Response).requestGuard?.rawBody,
    ...(fingerprint ? { extraHeaders: { [fingerprint.header.toLowerCase()]: fingerprint.fingerprint } } : {}),
    timeouts: { connect: config.server.timeouts.connect, firstByte: config.server.timeouts.first_byte, idle: config.server.timeouts.idle },
    knownSecrets,
    batching: true,
    onEvent: emit,
    logger,
  })

  const app = express()
  app.disable('x-powered-by')
  app.disable('etag')
  app.set('query parser', false)
  app.set('trust proxy', config.server.trust_proxy)

  // The layers every request passes, composed into one (see composeLayers).
  const front: RequestHandler[] = []
  // 1. request id, and no ambiguous paths past this point
  front.push(requestId())
  const hostLayer = hostGuardLayer(config.server.host, config.server.allowed_hosts, emit)
  if (hostLayer) front.push(hostLayer)
  front.push(pathGuard())
  front.push(function shutdownMiddleware(_req, res, next) {
    if (runtime.shuttingDown) res.setHeader('Connection', 'close')
    next()
  })
  // The access log sees every request, refusals included, when its response ends.
  front.push(
    accessLog({
      onEvent: emit,
      knownSecrets,
      logger,
      skip: (req) => req.path === '/healthz' || req.path === '/readyz',
      details: (_req, res) => {
        const id = gatehouseLocals(res).credentialVault?.credentialId
        return id ? { credential_id: id } : undefined
      },
    }),
  )
  // 2. security headers
  if (config.server.security.headers.enabled) {
    front.push(
      hsts({ ...hstsAdapter.options(config), logger }),
    )
  } else {
    front.push(function noStoreMiddleware(_req, res, next) {
      res.setHeader('Cache-Control', 'no-store')
      next()
    })
  }
  const frontLayer = composeLayers(front)
  app.use(frontLayer)
  // Health: no auth, no data.
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' })
  })
  app.get('/readyz', (_req, res) => {
    // Under store.on_error local a gateway whose Redis is down still enforces limits: it stays ready
    // (a balancer pulling every replica would take the whole service down); the metric says degraded.
    void Promise.resolve(fallbackStore ? true : rlStore.ping()).then((storeOk) => {
      const ready =
        !runtime.shuttingDown &&
        keyStore.lastError === undefined &&
        vault.status().readable &&
        (audit?.healthy ?? true) &&
        (storage?.healthy ?? true) &&
        ipf.isStoreHealthy() &&
        storeOk
      const missing = providersWithoutCredential(config, vault, providerNames)
      if (!ready || missing.length) {
        res.status(503).json({ status: 'not ready', ...(missing.length ? { providers_without_credential: missing } : {}) })
      } else res.json({ status: 'ready' })
    })
  })
  // Management API: its own key, loopback only by default; off without a secret key.
  const mk = config.management.secret_key
  if (config.management.enabled && mk) app.use('/v0/management', refusePreflight(emit))
  if (config.management.enabled && mk && mk.length >= 32) {
    // The dashboard logs in with the management key and keeps a session cookie; it is mounted
    // before the API router, whose Bearer check it does not use.
    app.use(
      '/v0/management/dashboard',
      function dashboardGuardMiddleware(req, res, next) {
        if (config.management.allow_remote || isLoopback(normalizeIp(req.ip))) return next()
        res.status(403).type('text/plain').send('The dashboard accepts loopback callers only')
      },
      dashboardRouter({
        secretKey: mk,
        secureCookies: config.server.tls.enabled,
        knownSecrets,
        logger,
        onEvent: emit,
        data: {
          recentEvents: (limit) => recent.recentEvents(limit),
          topRefused: () => recent.topRefused(),
          denylist: () => ipf.list(),
          limits: async () => {
            const out: { name: string; limit: number | string; used?: number; remaining?: number; resetsAt?: Date }[] = []
            for (const p of providerNames) {
              const pc = config.providers[p]!
              if (pc.rate_limit?.requests_per_minute) out.push({ name: `${p} requests per minute`, limit: pc.rate_limit.requests_per_minute })
              if (pc.rate_limit?.tokens_per_minute) out.push({ name: `${p} tokens per minute`, limit: pc.rate_limit.tokens_per_minute })
              if (pc.quota && quotaLimiter) {
                const u = await quotaLimiter.usage(p)
                out.push({ name: `${p} monthly token quota`, limit: pc.quota.limit, ...(u ? { used: u.used, remaining: u.remaining, resetsAt: u.resetsAt } : {}) })
              }
            }
            if (config.server.security.rate_limiting.enabled) {
              out.push({ name: 'requests per second per IP', limit: `${config.server.security.rate_limiting.requests_per_second} (burst ${config.server.security.rate_limiting.burst})` })
            }
            return out
          },
          doctor: () => diagnose(config, cwd, providersWithoutCredential(config, vault, providerNames)),
        },
      }),
    )
  } else if (config.management.enabled && mk) {
    logger.warn('the dashboard is off: it needs a management key of at least 32 characters')
  }
  if (config.management.enabled && mk) {
    app.use(
      '/v0/management',
      managementRouter({
        secretKey: mk,
        allowRemote: config.management.allow_remote,
        runtime,
        control,
        keyStore,
        emit,
        logger,
        canAudit: () => audit?.healthy ?? true,
        auditWritten: async () => {
          if (!audit) return true
          let timer: NodeJS.Timeout | undefined
          const flushed = await Promise.race([
            audit.flush().then(() => true),
            new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 2000))),
          ]).finally(() => clearTimeout(timer))
          return flushed && audit.healthy
        },
        extend: (router, ctx) => {
          mountDenylistRoutes(router, ctx, ipf)
          mountCredentialRoutes(router, ctx, vault)
          options.managementExtensions?.(router, ctx)
        },
      }),
    )
  }
  // The provider path: admission checks, then the proxy, composed into one layer.
  // SDKs wait Retry-After before retrying: short, so a client is not stuck for minutes.
  const retryAfter = Math.max(1, Math.ceil(parseDuration(config.server.retry_after) / 1000))
  const admission: RequestHandler[] = []
  // 3. maintenance
  admission.push(function maintenanceMiddleware(req, res, next) {
    if (!runtime.maintenance.enabled) return next()
    sendProviderError(res, detectProvider(req), 503, { message: runtime.maintenance.message }, { 'Retry-After': retryAfter })
  })
  // 4. ip filter
  admission.push(ipf)
  // 5. global and per-IP rate limits
  if (config.server.rate_limit.enabled) {
    limiters.push(rateLimit({ ...common, name: 'global', scope: 'global', requestsPerSecond: config.server.rate_limit.requests_per_second, burst: config.server.rate_limit.burst }))
  }
  const perIp = config.server.security.rate_limiting
  if (perIp.enabled) {
    limiters.push(rateLimit({ ...common, name: perIp.per_ip ? 'ip' : 'global-security', scope: perIp.per_ip ? 'ip' : 'global', requestsPerSecond: perIp.requests_per_second, burst: perIp.burst }))
  }
  for (const l of limiters) admission.push(l)
  // 6. client auth
  if (config.auth.client_auth.enabled) {
    const jwtOptions = jwtAdapter.options(config)
    admission.push(
      clientAuth({
        store: keyStore,
        honeytokens: config.auth.honeytokens,
        ...(jwtOptions ? { jwt: jwtOptions } : {}),
        // Every request's key id is in its provider_request line; one success line per key and address per 5 minutes.
        successEventInterval: 300_000,
        onEvent: emit,
        logger,
        // A decoy key's caller is denied for a day by default.
        onHoneytoken: ({ ip }) => void ipf.add(ip, { reason: 'honeytoken presented', ttlSeconds: 86_400 }).catch(() => undefined),
      }),
    )
  }
  // Routing and the per-provider kill switch; the route is resolved once and kept for the proxy.
  admission.push(function routeMiddleware(req, res, next) {
    const route = resolveProviderRoute(req.path, req.headers)
    if (!route) {
      sendProviderError(res, detectProvider(req), 404, { message: 'Unknown route' })
      return
    }
    if (!providerNames.includes(route.provider)) {
      sendProviderError(res, route.provider, 404, { message: `Provider ${route.provider} is not configured on this gateway` })
      return
    }
    const off = runtime.disabledProviders.get(route.provider)
    if (off !== undefined) {
      sendProviderError(res, route.provider, 503, { message: off }, { 'Retry-After': retryAfter })
      return
    }
    const locals = gatehouseLocals(res)
    locals.provider = route.provider
    locals.route = route
    next()
  })
  // A provider with no credential at all: a non-retryable 403 naming the setting.
  admission.push(unconfiguredProviderGuard(config, vault, emit))
  // The endpoint allowlist (provider defaults, or the key's own scope): refused before any limit is spent.
  admission.push(proxy.admission)
  // 7. request guard: the body is read and checked (caps bound the output) before any token is
  // reserved, so a request refused here, or one that never finishes its body, costs nothing.
  admission.push(
    requestGuard({
      ...requestGuardAdapter.options(config),
      onEvent: emit,
      logger,
    }),
  )
  // The key's models, wherever the request names them (body, path, nested batch entries).
  admission.push(keyModelScope({ onEvent: emit, logger }))
  // 8. per-provider request and token limits and monthly quotas, then each key's own limits: they
  // reserve request-guard's estimate and settle on what the request really cost.
  const rpm = Object.fromEntries(providerNames.flatMap((p) => (config.providers[p]?.rate_limit?.requests_per_minute ? [[p, { requestsPerMinute: config.providers[p]!.rate_limit!.requests_per_minute! }]] : [])))
  const tpm = Object.fromEntries(providerNames.flatMap((p) => (config.providers[p]?.rate_limit?.tokens_per_minute ? [[p, { tokensPerMinute: config.providers[p]!.rate_limit!.tokens_per_minute! }]] : [])))
  const quotas = Object.fromEntries(providerNames.flatMap((p) => (config.providers[p]?.quota ? [[p, { limit: config.providers[p]!.quota!.limit, reset: 'monthly' as const }]] : [])))
  const defaultMaxTokens = Math.max(...providerNames.map((p) => config.providers[p]?.max_tokens ?? 4096), 1)
  const providerLimiters: Array<RequestHandler & { shutdown?: () => Promise<void> | void }> = []
  if (Object.keys(rpm).length) providerLimiters.push(rateLimit({ ...common, name: 'provider-rpm', scope: 'provider', providers: rpm }))
  if (Object.keys(tpm).length) providerLimiters.push(tokenLimit({ ...common, name: 'provider-tpm', scope: 'provider', providers: tpm, defaultMaxTokens }))
  const quotaLimiter = Object.keys(quotas).length
    ? quota({ ...common, name: 'provider-quota', scope: 'provider', providers: quotas, defaultMaxTokens })
    : undefined
  if (quotaLimiter) providerLimiters.push(quotaLimiter)
  providerLimiters.push(keyLimits({ ...common, name: 'key', defaults: config.auth.key_limits, defaultMaxTokens }))
  for (const l of providerLimiters) admission.push(l)
  limiters.push(...providerLimiters)
  // 9. upstream credential (vault pool, then the configured key) and the proxy
  admission.push(credentialInjection({ vault, setRequestHeaders: false, autoReport: false, grantEventInterval: 300_000, onEvent: emit, logger }))
  admission.push(proxy)
  const admissionLayer = composeLayers(admission)
  app.use(admissionLayer)
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
  // The one performance seam (docs/performance.md): provider requests run the same two composed
  // layers without Express's router, on a server built with Express's prototypes.
  const server = createPipelineServer({
    app,
    layers: [frontLayer, admissionLayer],
    onError: (err, req, res) => onError(err, req, res, () => undefined),
    notFound: (req, res) => sendProviderError(res, detectProvider(req), 404, { message: 'Unknown route' }),
    ...(tlsSettings ? { tls: secureContextOptions(tlsSettings) } : {}),
  })
  const certWatch = tlsSettings ? watchCertificates(server as https.Server, tlsSettings, logger) : undefined
  server.keepAliveTimeout = 65_000
  server.headersTimeout = 66_000
  // Responses not yet closed, for the shutdown drain. A count, not a Set of the responses: a
  // long-lived collection that every request enters and leaves makes each young-generation
  // garbage collection walk it, which measured here at 50 µs a request.
  let inflight = 0
  const settled = (): void => {
    inflight--
  }
  server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    inflight++
    res.on('close', settled)
  })
  let metricsServer: MetricsServer | undefined

  const gateway: Gateway = {
    app,
    server,
    runtime,
    config,
    masker,
    keyStore,
    control,
    vault,
    ipFilter: ipf,
    audit,
    metrics,
    storage,
    emit,
    metricsUrl: () => metricsServer?.url,
    providersWithoutCredential: () => providersWithoutCredential(config, vault, providerNames),
    listen: async () => {
      if (redis && redis.status !== 'ready') {
        // Give Redis a moment before taking traffic, so the first requests meet a working store.
        const ready = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), 5000)
          redis.once('ready', () => {
            clearTimeout(timer)
            resolve(true)
          })
        })
        if (!ready) logger.error(`redis is not reachable yet; store.on_error (${onStoreError}) applies until it is`)
      }
      await ipf.ready().catch(() => undefined)
      if (keyStore instanceof RedisKeyStore) {
        // Until the first copy is read no key authenticates (and /readyz says so); it keeps trying.
        await keyStore.start().catch((err: unknown) => logger.error('the shared key store cannot be read yet; no client key authenticates until it can', { error: masker.text(String(err)) }))
        // An install moving into cluster mode: its key file is not read any more.
        const file = join(authDir, 'client-keys.json')
        const fileHoldsKeys = (): boolean => {
          try {
            return new FileKeyStore({ file, salt: secrets.salt, reload: 'stat' }).list().length > 0
          } catch {
            return false
          }
        }
        if (keyStore.version === 0 && existsSync(file) && fileHoldsKeys()) {
          logger.warn(`the shared key store in Redis is empty, but ${file} holds client keys, which cluster mode does not read: run \`gatehouse keys migrate --to redis\` to move them (none is re-issued)`)
        }
      }
      await control.start().catch((err: unknown) => logger.error('the shared maintenance state cannot be read yet; this config applies until it can', { error: masker.text(String(err)) }))
      if (redis && keyStore instanceof RedisKeyStore && !heartbeat) {
        heartbeat = startReplicaHeartbeat({
          client: redis,
          prefix,
          status: () => ({ keys_version: keyStore.version, runtime_version: control.version() ?? 0, degraded: !sharedFresh() }),
        })
      }
      // The gateway's own port first, then the metrics port: either taken, nothing stays listening
      // and the error names the config key.
      const address = await new Promise<{ url: string; port: number }>((resolve, reject) => {
        server.once('error', reject)
        server.listen(config.server.port, config.server.host, () => {
          server.off('error', reject)
          const { port } = server.address() as AddressInfo
          const host = config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host
          resolve({ url: `${tlsSettings ? 'https' : 'http'}://${host}:${port}`, port })
        })
      }).catch((err: unknown) => {
        throw listenError('server.port', config.server.host, config.server.port, err)
      })
      if (metrics && !metricsServer) {
        try {
          metricsServer = await startMetricsServer({ metrics, host: config.metrics.host, allowedHosts: config.metrics.allowed_hosts, port: config.metrics.port, path: config.metrics.path, logger })
        } catch (err) {
          await new Promise((r) => server.close(r))
          throw listenError('metrics.port', config.metrics.host, config.metrics.port, err)
        }
      }
      return address
    },
    close: async (graceMs = parseDuration(config.server.timeouts.shutdown_grace)) => {
      runtime.shuttingDown = true
      certWatch?.close()
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeIdleConnections()
      const deadline = Date.now() + graceMs
      while (inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25))
      server.closeAllConnections()
      await closed
      proxy.close()
      const settle = async (what: string, fn: () => unknown): Promise<void> => {
        try {
          await fn()
        } catch (err) {
          logger.error(`shutdown: ${what} failed`, { error: masker.text(String(err)) })
        }
      }
      await settle('alerts', () => alerts?.shutdown())
      await settle('metrics listener', () => metricsServer?.close())
      await settle('ip filter', () => ipf.shutdown())
      await settle('denylist store', () => denylistStore?.shutdown())
      for (const l of limiters) await settle('rate limiter', () => l.shutdown?.())
      await settle('rate-limit store', () => rlStore.shutdown())
      await settle('vault', () => vault.shutdown())
      await settle('replica report', () => heartbeat?.stop())
      await settle('key store', () => keyStore.close())
      await settle('shared runtime', () => control.close())
      await settle('storage', () => storage?.close())
      await settle('audit log', () => audit?.close())
      if (redis) await settle('redis', () => redis.quit())
    },
  }
  return gateway
}

/** logging.audit.sinks and .checkpoints as the audit logger's options (certificate and key files read here). */
function auditShipping(config: GatehouseConfig, cwd: string): Pick<AuditLogOptions, 'sinks' | 'checkpoints'> {
  const read = (file: string | undefined): string | undefined => (file ? readFileSync(resolvePath(cwd, file), 'utf8') : undefined)
  const sinks = (config.logging.audit.sinks ?? []).map((s): AuditSinkOptions => {
    const common = {
      ...(s.name !== undefined ? { name: s.name } : {}),
      ...(s.max_queue !== undefined ? { maxQueue: s.max_queue } : {}),
      ...(s.overflow !== undefined ? { overflow: s.overflow } : {}),
      ...(s.ca_file ? { ca: read(s.ca_file)! } : {}),
      ...(s.cert_file ? { cert: read(s.cert_file)! } : {}),
      ...(s.key_file ? { key: read(s.key_file)! } : {}),
    }
    return s.type === 'syslog'
      ? { type: 'syslog', host: s.host ?? '', ...(s.port !== undefined ? { port: s.port } : {}), ...(s.servername ? { servername: s.servername } : {}), ...common }
      : { type: 'https', url: s.url ?? '', ...(s.headers ? { headers: s.headers } : {}), ...common }
  })
  const cp = config.logging.audit.checkpoints
  const checkpointing = cp?.enabled ?? sinks.length > 0
  return {
    ...(sinks.length ? { sinks } : {}),
    ...(cp
      ? {
          checkpoints: {
            ...(cp.enabled !== undefined ? { enabled: cp.enabled } : {}),
            ...(cp.interval !== undefined ? { interval: cp.interval } : {}),
            ...(cp.signing_key_file && checkpointing ? { signingKey: read(cp.signing_key_file)! } : {}),
            ...(cp.log_id ? { logId: cp.log_id } : {}),
          },
        }
      : {}),
  }
}

/** A listener that could not bind, named by the config key that chose its port. */
function listenError(key: string, host: string, port: number, err: unknown): Error {
  // The system's code (EADDRINUSE…), on the error or on what a package wrapped.
  const errno = (e: unknown): string | undefined => {
    const c = (e as NodeJS.ErrnoException | undefined)?.code
    return typeof c === 'string' && /^E[A-Z]+$/.test(c) ? c : undefined
  }
  const code = errno(err) ?? errno((err as Error | undefined)?.cause) ?? /\b(E[A-Z]{4,})\b/.exec(String((err as Error)?.message))?.[1]
  const why = code === 'EADDRINUSE' ? 'the port is taken by another process' : code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)' : code === 'EADDRNOTAVAIL' ? 'the address is not one of this host' : String((err as Error)?.message ?? err)
  return new Error(`${key}: cannot listen on ${host}:${port}: ${why}${code ? ` (${code})` : ''}`, { cause: err })
}

/** Private and link-local ranges Express names in `trust proxy`. */
const TRUST_PROXY_NAMES: Record<string, string[]> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
}

/** The addresses `server.trust_proxy` names (a list or a comma-separated string), never blocked by an alert. */
function trustedProxyAddresses(trust: GatehouseConfig['server']['trust_proxy']): string[] {
  const entries = Array.isArray(trust) ? trust : typeof trust === 'string' ? trust.split(',') : []
  return entries.map((e) => e.trim()).flatMap((e) => TRUST_PROXY_NAMES[e] ?? (e === '' ? [] : [e]))
}
