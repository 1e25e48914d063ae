import { HOST_NAME_PATTERN, createOptionsResolver, isLogger, noopLogger, type Logger } from '@gatehouse/core'
import { PKG, invalid } from './options'

/** Options of `startMetricsServer()`. */
export interface MetricsServerOptions {
  /** What to serve: the object `createMetrics()` returned. Required. */
  metrics: { render(): Promise<string>; readonly contentType: string }
  /**
   * Address to listen on. Anything but loopback exposes the metrics (client addresses among them)
   * to the network, and is logged at warn.
   * @default '127.0.0.1'
   */
  host?: string
  /** Port; 0 picks a free one. @default 9090 */
  port?: number
  /** Path of the metrics endpoint; every other path answers 404. @default '/metrics' */
  path?: string
  /**
   * On a loopback address, the Host names answered besides IP literals, `localhost` and
   * `*.localhost`, with any port and in any case (a request with any other Host, or none, gets 421:
   * a DNS-rebinding page cannot read the metrics). Names only: no port, no scheme, no trailing dot.
   * Not applied on a non-loopback address. @default []
   */
  allowedHosts?: string[]
  /**
   * Open connections at most; one more is closed on arrival. Scrapers are few, and the listener's
   * descriptors come out of the same process limit as everything else's: a flood of idle sockets
   * must not take them. @default 64
   */
  maxConnections?: number
  /** Where a listen warning and render failures go. @default a no-op logger */
  logger?: Logger
}

export interface MetricsServerConfig {
  readonly metrics: MetricsServerOptions['metrics']
  readonly host: string
  readonly port: number
  readonly path: string
  readonly allowedHosts: readonly string[]
  readonly maxConnections: number
  readonly logger: Logger
}

export const metricsServerOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    metrics: {},
    host: { type: 'string', minLength: 1 },
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    path: { type: 'string', pattern: '^/[A-Za-z0-9/_.-]*$' },
    allowedHosts: { type: 'array', items: { type: 'string', maxLength: 253, pattern: HOST_NAME_PATTERN } },
    maxConnections: { type: 'integer', minimum: 1, maximum: 65535 },
    logger: {},
  },
} as const

const resolveServerRaw = createOptionsResolver<MetricsServerOptions>({
  pkg: PKG,
  codePrefix: 'GH_METRICS',
  schema: metricsServerOptionsSchema,
  handChecked: ['metrics', 'logger'],
})

export function resolveMetricsServerConfig(options: MetricsServerOptions): MetricsServerConfig {
  const raw = resolveServerRaw(options)
  const m = raw.metrics as unknown
  if (m === null || typeof m !== 'object' || typeof (m as { render?: unknown }).render !== 'function') {
    throw invalid('metrics is required: the object createMetrics() returned')
  }
  if (raw.logger !== undefined && !isLogger(raw.logger)) throw invalid('logger must have error, warn, info and debug methods')
  return Object.freeze({
    metrics: raw.metrics,
    host: raw.host ?? '127.0.0.1',
    port: raw.port ?? 9090,
    path: raw.path ?? '/metrics',
    allowedHosts: Object.freeze([...(raw.allowedHosts ?? [])]),
    maxConnections: raw.maxConnections ?? 64,
    logger: raw.logger ?? noopLogger,
  })
}
