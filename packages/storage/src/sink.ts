import { GatehouseError, type SecurityEvent } from '@gatehouse/core'
import { failure, openConnection } from './connection'
import { checkSchema, createHealth, type StorageSinkStats } from './health'
import { migrate, type RetentionResult } from './migrate'
import { PKG, resolveStorageSinkConfig, type StorageSinkOptions } from './options'
import { createQueue } from './queue'
import { createRetention } from './retention'

export type { StorageSinkStats } from './health'

/** What `createStorageSink()` returns. Every function is bound: pass `record` as an `onEvent`. */
export interface StorageSink {
  /**
   * Queue an event: `provider_request` → `api_requests`, the others → `security_events`. Never
   * throws and never waits; past `maxQueue` the event is dropped and counted.
   */
  record(event: SecurityEvent): void
  /**
   * Queue a request body (masked now, stored with the request id) when `storeBodies` is on.
   * Returns true when queued. Never throws.
   */
  recordBody(requestId: string, body: unknown): boolean
  /** Write everything queued so far. Rejects with GH_STORAGE_WRITE_FAILED (the rows stay queued). */
  flush(): Promise<void>
  /**
   * Stop taking events, write what is queued, and end the sink's own pool. Rejects with
   * GH_STORAGE_WRITE_FAILED, naming how many were lost, when the final write fails.
   */
  close(): Promise<void>
  /** Probe the database and the schema version; updates `healthy`. Rejects with the reason. */
  check(): Promise<void>
  /** Delete rows older than `retentionDays` now (all zero when retention is off). */
  runRetention(): Promise<RetentionResult>
  stats(): StorageSinkStats
  /** True once the database answered and the schema is current; false after a failed write or check. */
  readonly healthy: boolean
  /** The last failure, masked, or undefined while healthy. */
  readonly lastError: string | undefined
  /** The schema written to. */
  readonly schema: string
}

/**
 * Create the storage sink: events and bodies go to PostgreSQL in batches, off the request path. A
 * slow or unreachable database never delays or fails a request: rows wait in a bounded queue, are
 * retried with backoff, and past `maxQueue` are dropped, counted and reported.
 *
 * The parts: the connection (connection.ts), health and the schema check (health.ts), the queue
 * and its batches (queue.ts, writer.ts), and retention (retention.ts).
 */
export function createStorageSink(options: StorageSinkOptions): StorageSink {
  const config = resolveStorageSinkConfig(options)
  const { logger, schema } = config
  const connection = openConnection(config)
  const health = createHealth(logger, connection.where, config.reportIntervalMs)
  const queue = createQueue(config, connection, health, () => startup)
  const check = (): Promise<void> => checkSchema(config, connection, health, queue.size)
  const retention = createRetention(config, connection, health)
  let closed = false
  let closing: Promise<void> | undefined

  const startup: Promise<void> = (async () => {
    if (config.migrate) {
      try {
        await migrate(connection.pool, schema)
      } catch (err) {
        health.counts.errors++
        const e = err instanceof GatehouseError ? err : failure('GH_STORAGE_MIGRATION_FAILED', `migrating schema "${schema}" failed: ${connection.describe(err)}`, err)
        health.markUnhealthy(e, queue.size())
      }
    }
    // A failed check is reported by check(); writes are still attempted and retried.
    await check().catch(() => undefined)
  })()

  const timer = setInterval(() => {
    queue.reportDrops(false)
    queue.background()
  }, config.flushIntervalMs)
  timer.unref()
  retention.start(startup, () => !closed)

  async function drainAndEnd(): Promise<void> {
    let error: GatehouseError | undefined
    try {
      await queue.write(Number.POSITIVE_INFINITY)
    } catch (err) {
      const lost = queue.discard()
      const why = err instanceof GatehouseError ? err.message.replace(`${PKG}: `, '') : connection.describe(err)
      error = failure('GH_STORAGE_WRITE_FAILED', `closing: ${lost} queued row(s) could not be written to PostgreSQL at ${connection.where}: ${why}`, err)
      logger.error(error.message, { code: error.code, lost })
    }
    queue.reportDrops(true)
    await retention.stop()
    health.markClosed()
    if (connection.ownPool) await connection.pool.end().catch(() => undefined)
    if (error) throw error
  }

  return Object.freeze({
    record: queue.record,
    recordBody: queue.recordBody,
    flush: () => queue.write(queue.size()),
    close(): Promise<void> {
      if (closing) return closing
      closed = true
      queue.stop()
      clearInterval(timer)
      closing = drainAndEnd()
      return closing
    },
    check,
    runRetention: retention.run,
    stats: (): StorageSinkStats => ({ queued: queue.size(), ...health.counts }),
    get healthy() {
      return health.healthy
    },
    get lastError() {
      return health.lastError
    },
    schema,
  })
}
