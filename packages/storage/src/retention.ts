import type { SinkConnection } from './connection'
import { StorageErrorCodes } from './errors'
import type { SinkHealth } from './health'
import { runRetention, type RetentionResult } from './migrate'
import { PKG, type StorageSinkConfig } from './options'

/** The sink's retention: one run at a time, after the start-up check and then every `retentionInterval`. */
export interface SinkRetention {
  /** Delete rows older than `retentionDays` now (all zero when retention is off); joins a run under way. */
  run(): Promise<RetentionResult>
  /** Schedule the runs: the first once `startup` is done and the database is healthy. */
  start(startup: Promise<void>, isOpen: () => boolean): void
  /** Stop the timer and wait for a run under way. */
  stop(): Promise<void>
}

export function createRetention(config: StorageSinkConfig, connection: SinkConnection, health: SinkHealth): SinkRetention {
  const { retentionDays, schema, logger } = config
  let running: Promise<RetentionResult> | undefined
  let timer: NodeJS.Timeout | undefined

  async function once(): Promise<RetentionResult> {
    try {
      const result = await runRetention(connection.pool, { schema, retentionDays })
      const total = result.api_requests + result.security_events + result.request_bodies
      if (total > 0) logger.info(`${PKG}: retention deleted ${total} row(s) older than ${retentionDays} days`, { ...result })
      return result
    } catch (err) {
      health.counts.errors++
      const message = err instanceof Error ? connection.mask.text(err.message) : connection.describe(err)
      logger.error(message, { code: StorageErrorCodes.GH_STORAGE_RETENTION_FAILED })
      throw err
    } finally {
      running = undefined
    }
  }

  const run = (): Promise<RetentionResult> => {
    if (retentionDays === 0) return Promise.resolve({ api_requests: 0, security_events: 0, request_bodies: 0 })
    running ??= once()
    return running
  }

  return {
    run,
    start(startup, isOpen) {
      if (retentionDays === 0) return
      void startup.then(() => {
        if (isOpen() && health.healthy) run().catch(() => undefined)
      })
      timer = setInterval(() => {
        if (isOpen()) run().catch(() => undefined)
      }, config.retentionIntervalMs)
      timer.unref()
    },
    async stop() {
      if (timer) clearInterval(timer)
      await running?.catch(() => undefined)
    },
  }
}
