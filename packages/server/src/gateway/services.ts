import { createMasker, isProviderName, parseDuration, type Logger, type Masker, type ProviderName } from '@gatehouse/core'
import { ipFilter, RedisDenylistStore, type IpFilterMiddleware } from '@gatehouse/ip-filter'
import type { GatehouseConfig } from '../config/types'
import { authPaths, type AuthPaths } from '../auth-paths'
import { ipFilterAdapter } from '../config/adapters'
import { createAlerts, type AlertEngine } from './alerts'
import { createEventSinks, type EventSinks } from './events'
import { createLimits, type Limits } from './limits'
import { configSecrets, resolveGeneratedSecrets, type GeneratedSecrets } from './secrets'
import { createSharedState, type SharedState } from './state'
import { createUpstream, type Upstream } from './upstream'
import type { GatewayOptions } from './types'

/** Everything the layers are built from, made once per gateway. */
export interface GatewayServices {
  config: GatehouseConfig
  options: GatewayOptions
  cwd: string
  logger: Logger
  masker: Masker
  knownSecrets: string[]
  paths: AuthPaths
  secrets: GeneratedSecrets
  /** The providers this gateway serves (enabled in the config). */
  providers: ProviderName[]
  state: SharedState
  events: EventSinks
  ipFilter: IpFilterMiddleware
  /** The Redis denylist store, which the gateway owns and closes (undefined alone). */
  denylistStore: RedisDenylistStore | undefined
  alerts: AlertEngine | undefined
  upstream: Upstream
  limits: Limits
  /** Seconds SDKs wait before retrying a 503: short, so a client is not stuck for minutes. */
  retryAfter: number
}

export function createServices(config: GatehouseConfig, options: GatewayOptions): GatewayServices {
  const cwd = options.cwd ?? process.cwd()
  const logger = options.logger
  const knownSecrets = configSecrets(config)
  const masker = createMasker({ knownSecrets })
  const paths = authPaths(config, cwd)
  const secrets = resolveGeneratedSecrets(config, paths)
  const state = createSharedState(config, paths, secrets, logger)
  const providers = Object.entries(config.providers)
    .filter(([name, pc]) => pc?.enabled && isProviderName(name))
    .map(([name]) => name as ProviderName)
  const events = createEventSinks({ config, cwd, auditKey: secrets.auditKey, knownSecrets, masker, logger })
  const { emit } = events

  // The denylist store is the gateway's (ipf.shutdown() leaves a store it was given alone): its
  // change subscription holds a Redis connection of its own until the gateway closes it.
  const denylistStore = state.redis ? new RedisDenylistStore({ client: state.redis, prefix: `${state.prefix}denylist:`, logger }) : undefined
  const ipf = ipFilter({
    ...ipFilterAdapter.options(config),
    ...(denylistStore ? { store: denylistStore } : {}),
    // The denylist has no share to divide: under `local` each gateway keeps the entries it has.
    onStoreError: config.store.on_error === 'deny' ? 'deny' : 'allow',
    onEvent: emit,
    logger,
  })
  const alerts = createAlerts(config, ipf, emit, state.redis, logger)
  if (alerts) events.add(alerts.recordEvent)
  for (const sink of options.eventSinks ?? []) events.add(sink)

  const upstream = createUpstream({ config, state, authDir: paths.dir, encryptionKey: secrets.encryptionKey, providers, knownSecrets, emit, logger })
  const limits = createLimits({ config, state, paths, quotaKey: secrets.quotaKey, providers, metrics: events.metrics, emit, logger })
  if (state.redis && events.metrics) events.metrics.trackSharedState({ degraded: () => !state.fresh() })
  if (events.metrics) events.metrics.trackKeyExpiry(state.keyStore)
  const retryAfter = Math.max(1, Math.ceil(parseDuration(config.server.retry_after) / 1000))
  return { config, options, cwd, logger, masker, knownSecrets, paths, secrets, providers, state, events, ipFilter: ipf, denylistStore, alerts, upstream, limits, retryAfter }
}
