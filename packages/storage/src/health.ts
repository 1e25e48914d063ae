import type { GatehouseError, Logger } from '@gatehouse/core'
import { failure, type SinkConnection } from './connection'
import { SCHEMA_VERSION, schemaVersion } from './migrate'
import { PKG, type StorageSinkConfig } from './options'

/** Counters of a storage sink since it was created. */
export interface StorageSinkStats {
  /** Events and bodies waiting to be written (including a batch being written). */
  queued: number
  /** Rows written. */
  written: number
  /** Events and bodies given up: queue full, refused by the database, unwritten at close, invalid. */
  dropped: number
  /** Failed writes, checks and retention runs. */
  errors: number
}

/** Whether the database is usable, the last failure, and the counters every part of the sink updates. */
export interface SinkHealth {
  readonly healthy: boolean
  readonly lastError: string | undefined
  readonly counts: Omit<StorageSinkStats, 'queued'>
  markHealthy(): void
  /** Record a failure; logged at most once per `reportInterval`. */
  markUnhealthy(err: GatehouseError, queued: number): void
  /** After close: no longer healthy, with nothing to report. */
  markClosed(): void
}

export function createHealth(logger: Logger, where: string, reportIntervalMs: number): SinkHealth {
  let healthy = false
  let lastError: string | undefined
  let lastFailureReport = -Infinity
  const counts = { written: 0, dropped: 0, errors: 0 }
  return {
    get healthy() {
      return healthy
    },
    get lastError() {
      return lastError
    },
    counts,
    markHealthy() {
      if (!healthy && lastError !== undefined) logger.info(`${PKG}: PostgreSQL at ${where} is writable again`)
      healthy = true
      lastError = undefined
    },
    markUnhealthy(err, queued) {
      healthy = false
      lastError = err.message
      const now = Date.now()
      if (now - lastFailureReport >= reportIntervalMs) {
        lastFailureReport = now
        logger.error(err.message, { code: err.code, queued })
      }
    },
    markClosed() {
      healthy = false
    },
  }
}

/**
 * Probe the database and compare the schema version with SCHEMA_VERSION; updates `health`. Rejects
 * with GH_STORAGE_CONNECT_FAILED or GH_STORAGE_SCHEMA_OUTDATED.
 */
export async function checkSchema(
  config: StorageSinkConfig,
  connection: SinkConnection,
  health: SinkHealth,
  queued: () => number,
): Promise<void> {
  const { schema } = config
  const at = config.target.description
  let version: number
  try {
    version = await schemaVersion(connection.pool, schema)
  } catch (err) {
    health.counts.errors++
    const e = failure('GH_STORAGE_CONNECT_FAILED', `cannot use PostgreSQL at ${connection.where}: ${connection.describe(err)}`, err)
    health.markUnhealthy(e, queued())
    throw e
  }
  if (version < SCHEMA_VERSION) {
    health.counts.errors++
    const e = failure(
      'GH_STORAGE_SCHEMA_OUTDATED',
      version === 0
        ? `schema "${schema}" at ${at} has no Gatehouse tables; run \`gatehouse storage migrate\` (migrate()) as the schema owner`
        : `schema "${schema}" at ${at} is at version ${version}, this library writes version ${SCHEMA_VERSION}; run \`gatehouse storage migrate\``,
    )
    health.markUnhealthy(e, queued())
    throw e
  }
  health.markHealthy()
}
