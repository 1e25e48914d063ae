import { isProviderName, ReplicatedHash, type Logger, type ProviderName, type ReplicatedHashClient } from '@gatehouse/core'
import type { GatewayRuntime } from '../runtime'

/**
 * How the management API changes the state an operator flips at run time (maintenance mode, the
 * per-provider kill switch). Alone, the change is made in this process; with a shared store it is
 * made in Redis and every replica applies it (SharedRuntime), or, Redis unreachable, nowhere.
 */
export interface RuntimeControl {
  setMaintenance(maintenance: GatewayRuntime['maintenance']): Promise<void>
  /** `message` switches the provider off with that answer; undefined switches it back on. */
  setProvider(name: ProviderName, message: string | undefined): Promise<void>
  /** The shared state's version in this replica (undefined when nothing is shared). */
  version(): number | undefined
  /** Whether the copy was confirmed current within `ms` (always, when nothing is shared). */
  freshWithin(ms: number): boolean
  start(): Promise<void>
  close(): Promise<void>
}

/** The state of this process alone. */
export function localRuntimeControl(runtime: GatewayRuntime): RuntimeControl {
  return {
    setMaintenance: async (m) => {
      runtime.maintenance = { ...m }
    },
    setProvider: async (name, message) => {
      if (message === undefined) runtime.disabledProviders.delete(name)
      else runtime.disabledProviders.set(name, message)
    },
    version: () => undefined,
    freshWithin: () => true,
    start: async () => undefined,
    close: async () => undefined,
  }
}

const PROVIDER_FIELD = 'provider:'

/**
 * Maintenance and the kill switch in one Redis hash (`<prefix>runtime`) that every replica copies:
 * field `maintenance` ({"enabled", "message"} as JSON) and `provider:<name>` (the message of a
 * provider switched off). Until the hash says otherwise, `server.maintenance_mode` and
 * `server.message` of this replica's config apply.
 */
export function sharedRuntimeControl(
  runtime: GatewayRuntime,
  options: { client: ReplicatedHashClient; prefix: string; logger: Logger },
): RuntimeControl {
  const initial = { ...runtime.maintenance }
  const shared = new ReplicatedHash({
    client: options.client,
    key: `${options.prefix}runtime`,
    label: 'gatehouse: shared maintenance and kill switch',
    logger: options.logger,
    onChange: (entries) => {
      let maintenance = initial
      const raw = entries.get('maintenance')
      if (raw !== undefined) {
        try {
          const m = JSON.parse(raw) as { enabled?: unknown; message?: unknown }
          if (typeof m.enabled === 'boolean' && typeof m.message === 'string') maintenance = { enabled: m.enabled, message: m.message }
          else throw new Error('not {"enabled", "message"}')
        } catch (err) {
          // Unreadable: the safe reading of a maintenance switch is "on".
          options.logger.error('gatehouse: the shared maintenance state is malformed; serving in maintenance until it is set again', { error: String(err) })
          maintenance = { enabled: true, message: initial.message }
        }
      }
      const off = new Map<ProviderName, string>()
      for (const [field, message] of entries) {
        const name = field.startsWith(PROVIDER_FIELD) ? field.slice(PROVIDER_FIELD.length) : undefined
        if (name !== undefined && isProviderName(name)) off.set(name, message)
      }
      runtime.maintenance = maintenance
      runtime.disabledProviders = off
    },
  })
  return {
    setMaintenance: async (m) => void (await shared.update({ maintenance: JSON.stringify({ enabled: m.enabled, message: m.message }) })),
    setProvider: async (name, message) => void (await shared.update({ [PROVIDER_FIELD + name]: message ?? null })),
    version: () => shared.version,
    freshWithin: (ms) => shared.freshWithin(ms),
    start: () => shared.start(),
    close: () => shared.close(),
  }
}
