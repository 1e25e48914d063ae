import { Pool } from 'pg'
import { GatehouseError, createMasker, emitSecurityEvent, type SecurityEvent } from '@gatehouse/core'
import { StorageErrorCodes, type StorageErrorCode } from './errors'
import { SCHEMA_VERSION, migrate, runRetention, schemaVersion, type RetentionResult } from './migrate'
import { PKG, resolveStorageSinkConfig, type StorageSinkOptions } from './options'
import {
  BODY_COLUMNS,
  EVENT_COLUMNS,
  REQUEST_COLUMNS,
  bodyRequestId,
  bodyValue,
  eventRow,
  isStorableEvent,
  jsonColumn,
  requestRow,
  roughSize,
} from './rows'
import { insertSql } from './sql'

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

type Item =
  | { kind: 'event'; event: SecurityEvent }
  | { kind: 'body'; row: unknown[]; bytes: number }

const MAX_BACKOFF_MS = 30_000

const sqlstate = (err: unknown): string | undefined => {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

/** Errors in the data itself: retrying the same rows cannot help. */
const isDataError = (err: unknown): boolean => {
  const code = sqlstate(err)
  return code !== undefined && (code.startsWith('22') || code.startsWith('23'))
}

function rawMessage(err: unknown): string {
  if (err instanceof AggregateError && err.message === '') {
    return err.errors.map((e: unknown) => rawMessage(e)).join('; ')
  }
  if (err instanceof Error) return err.message || String((err as { code?: unknown }).code ?? err.name)
  return String(err)
}

/**
 * Create the storage sink: events and bodies go to PostgreSQL in batches, off the request path. A
 * slow or unreachable database never delays or fails a request: rows wait in a bounded queue, are
 * retried with backoff, and past `maxQueue` are dropped, counted and reported.
 */
export function createStorageSink(options: StorageSinkOptions): StorageSink {
  const config = resolveStorageSinkConfig(options)
  const { logger, schema, batchSize, maxQueue } = config
  const ownPool = config.pool === undefined
  const password = config.connectionString ? safePassword(config.connectionString) : undefined
  const mask = createMasker({ knownSecrets: [...config.knownSecrets, ...(password ? [password] : [])] })
  const pool =
    config.pool ??
    new Pool({
      connectionString: config.connectionString,
      max: config.poolSize,
      connectionTimeoutMillis: config.connectTimeoutMs,
      query_timeout: config.queryTimeoutMs,
      idleTimeoutMillis: 30_000,
      allowExitOnIdle: true,
      keepAlive: true,
      application_name: 'gatehouse-storage',
    })
  const where = `${config.target.description}${config.target.sslmode ? ` (sslmode=${config.target.sslmode})` : ''}`

  const describe = (err: unknown): string => {
    let msg = mask.text(rawMessage(err))
    if (/does not support SSL|SSL|TLS|certificate/i.test(msg) && config.target.sslmode && config.target.sslmode !== 'disable') {
      msg += `; sslmode=${config.target.sslmode} requires TLS, so the connection is not retried without it`
    }
    return msg
  }
  const failure = (code: StorageErrorCode, message: string, cause?: unknown): GatehouseError =>
    new GatehouseError(StorageErrorCodes[code], `${PKG}: ${message}`, 503, cause === undefined ? undefined : { cause })

  if (ownPool) {
    pool.on('error', (err) => logger.warn(`${PKG}: an idle PostgreSQL connection to ${where} failed: ${describe(err)}`))
  }

  const queue: Item[] = []
  let inflight = 0
  let queuedBodyBytes = 0
  let written = 0
  let dropped = 0
  let errors = 0
  let healthy = false
  let lastError: string | undefined
  let closed = false
  let closing: Promise<void> | undefined
  let failures = 0
  let retryAt = 0
  let backgroundPending = false
  let soon = false
  let chain: Promise<unknown> = Promise.resolve()
  let droppedSinceReport = 0
  let lastDropReport = -Infinity
  let lastFailureReport = -Infinity
  let retention: Promise<RetentionResult> | undefined

  const markHealthy = (): void => {
    if (!healthy && lastError !== undefined) logger.info(`${PKG}: PostgreSQL at ${where} is writable again`)
    healthy = true
    lastError = undefined
  }
  const markUnhealthy = (err: GatehouseError): void => {
    healthy = false
    lastError = err.message
    const now = Date.now()
    if (now - lastFailureReport >= config.reportIntervalMs) {
      lastFailureReport = now
      logger.error(err.message, { code: err.code, queued: queue.length + inflight })
    }
  }

  const reportDrops = (force: boolean): void => {
    if (droppedSinceReport === 0) return
    const now = Date.now()
    if (!force && now - lastDropReport < config.reportIntervalMs) return
    lastDropReport = now
    const n = droppedSinceReport
    droppedSinceReport = 0
    logger.error(
      `${PKG}: ${n} event(s) dropped: the storage queue is full (maxQueue ${maxQueue}) while PostgreSQL at ${where} is slow or unreachable`,
      { code: StorageErrorCodes.GH_STORAGE_QUEUE_FULL, dropped: n, total_dropped: dropped },
    )
    emitSecurityEvent(
      config.onEvent,
      { event_type: 'security_violation', result: 'storage_events_dropped', details: { dropped: n, max_queue: maxQueue } },
      (err) => logger.error(`${PKG}: the onEvent handler threw: ${describe(err)}`),
    )
  }
  const drop = (): void => {
    dropped++
    droppedSinceReport++
    reportDrops(false)
  }

  async function insert(items: readonly Item[]): Promise<void> {
    const requests: unknown[][] = []
    const events: unknown[][] = []
    const bodies: unknown[][] = []
    for (const item of items) {
      if (item.kind === 'body') bodies.push(item.row)
      else if (item.event.event_type === 'provider_request') requests.push(requestRow(mask, item.event))
      else events.push(eventRow(mask, item.event))
    }
    const statements: Array<[string, unknown[]]> = []
    if (requests.length) statements.push([insertSql(schema, 'api_requests', REQUEST_COLUMNS, requests.length), requests.flat()])
    if (events.length) statements.push([insertSql(schema, 'security_events', EVENT_COLUMNS, events.length), events.flat()])
    if (bodies.length) statements.push([insertSql(schema, 'request_bodies', BODY_COLUMNS, bodies.length), bodies.flat()])
    if (statements.length === 0) return
    const client = await pool.connect()
    let broken: Error | undefined
    // A connection that dies while checked out emits 'error' on the client, which pg leaves to us.
    const onError = (err: Error): void => {
      broken = err
    }
    client.on('error', onError)
    try {
      if (statements.length === 1) {
        await client.query(statements[0]![0], statements[0]![1])
      } else {
        await client.query('BEGIN')
        try {
          for (const [sql, params] of statements) await client.query(sql, params)
          await client.query('COMMIT')
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined)
          throw err
        }
      }
    } catch (err) {
      broken = err instanceof Error ? err : new Error(String(err))
      throw err
    } finally {
      client.release(broken)
      client.removeListener('error', onError)
    }
  }

  const forget = (items: readonly Item[]): void => {
    for (const item of items) if (item.kind === 'body') queuedBodyBytes -= item.bytes
  }

  /** Write up to `limit` queued items in batches. Rejects on the first batch that could not be written. */
  async function writeUpTo(limit: number): Promise<void> {
    await startup
    let done = 0
    while (done < limit && queue.length > 0) {
      const batch = queue.splice(0, batchSize)
      inflight = batch.length
      try {
        await insert(batch)
        written += batch.length
        forget(batch)
        failures = 0
        retryAt = 0
        markHealthy()
      } catch (err) {
        errors++
        if (isDataError(err)) {
          // One bad row must not sink the batch: write the rows one by one, drop the bad ones.
          for (const item of batch) {
            try {
              await insert([item])
              written++
            } catch (one) {
              dropped++
              logger.error(`${PKG}: PostgreSQL refused a row; it is dropped: ${describe(one)}`, {
                code: StorageErrorCodes.GH_STORAGE_WRITE_FAILED,
              })
            }
          }
          forget(batch)
        } else {
          queue.unshift(...batch)
          failures++
          const delay = Math.min(MAX_BACKOFF_MS, config.flushIntervalMs * 2 ** Math.min(failures, 16))
          retryAt = Date.now() + delay
          const e = failure(
            'GH_STORAGE_WRITE_FAILED',
            `cannot write to PostgreSQL at ${where}: ${describe(err)} (${queue.length} queued; retrying in ${Math.ceil(delay / 1000)}s)`,
            err,
          )
          markUnhealthy(e)
          throw e
        }
      } finally {
        inflight = 0
      }
      done += batch.length
    }
  }

  /** Serialise writes: one batch at a time, in order. */
  function job(limit: number): Promise<void> {
    const run = chain.then(() => writeUpTo(limit))
    chain = run.catch(() => undefined)
    return run
  }

  /** Start a write on the next turn of the event loop (once, however many rows arrive meanwhile). */
  const writeSoon = (): void => {
    if (soon || backgroundPending) return
    soon = true
    setImmediate(() => {
      soon = false
      background()
    }).unref()
  }

  function background(): void {
    if (backgroundPending || queue.length === 0 || Date.now() < retryAt) return
    backgroundPending = true
    job(queue.length)
      .catch(() => undefined)
      .finally(() => {
        backgroundPending = false
        if (!closed && queue.length >= batchSize && Date.now() >= retryAt) writeSoon()
      })
  }

  const record = (event: SecurityEvent): void => {
    try {
      if (closed || !isStorableEvent(event)) {
        dropped++
        return
      }
      if (queue.length + inflight >= maxQueue) {
        drop()
        return
      }
      queue.push({ kind: 'event', event: { ...event } })
      if (queue.length >= batchSize) writeSoon()
    } catch {
      // record() never throws into the request that emitted the event.
    }
  }

  const recordBody = (requestId: string, body: unknown): boolean => {
    if (!config.storeBodies) return false
    try {
      if (closed || queue.length + inflight >= maxQueue) {
        if (!closed) drop()
        else dropped++
        return false
      }
      const size = roughSize(body)
      const column =
        size !== undefined && size > config.maxBodyBytes * 4
          ? { json: JSON.stringify({ _truncated: true, _bytes: size }), bytes: size, truncated: true }
          : jsonColumn(mask, bodyValue(body), config.maxBodyBytes)
      const held = Buffer.byteLength(column.json)
      if (queuedBodyBytes + held > config.maxQueueBodyBytes) {
        drop()
        return false
      }
      queuedBodyBytes += held
      const row = [new Date().toISOString(), bodyRequestId(mask, requestId), column.json, column.bytes, column.truncated]
      queue.push({ kind: 'body', row, bytes: held })
      if (queue.length >= batchSize) writeSoon()
      return true
    } catch {
      return false
    }
  }

  async function check(): Promise<void> {
    let version: number
    try {
      version = await schemaVersion(pool, schema)
    } catch (err) {
      errors++
      const e = failure('GH_STORAGE_CONNECT_FAILED', `cannot use PostgreSQL at ${where}: ${describe(err)}`, err)
      markUnhealthy(e)
      throw e
    }
    if (version < SCHEMA_VERSION) {
      errors++
      const e = failure(
        'GH_STORAGE_SCHEMA_OUTDATED',
        version === 0
          ? `schema "${schema}" at ${config.target.description} has no Gatehouse tables; run \`gatehouse storage migrate\` (migrate()) as the schema owner`
          : `schema "${schema}" at ${config.target.description} is at version ${version}, this library writes version ${SCHEMA_VERSION}; run \`gatehouse storage migrate\``,
      )
      markUnhealthy(e)
      throw e
    }
    markHealthy()
  }

  async function retentionNow(): Promise<RetentionResult> {
    if (config.retentionDays === 0) return { api_requests: 0, security_events: 0, request_bodies: 0 }
    if (retention) return retention
    retention = (async () => {
      try {
        const result = await runRetention(pool, { schema, retentionDays: config.retentionDays })
        const total = result.api_requests + result.security_events + result.request_bodies
        if (total > 0) logger.info(`${PKG}: retention deleted ${total} row(s) older than ${config.retentionDays} days`, { ...result })
        return result
      } catch (err) {
        errors++
        const message = err instanceof Error ? mask.text(err.message) : describe(err)
        logger.error(message, { code: StorageErrorCodes.GH_STORAGE_RETENTION_FAILED })
        throw err
      } finally {
        retention = undefined
      }
    })()
    return retention
  }

  const startup: Promise<void> = (async () => {
    if (config.migrate) {
      try {
        await migrate(pool, schema)
      } catch (err) {
        errors++
        markUnhealthy(
          err instanceof GatehouseError
            ? err
            : failure('GH_STORAGE_MIGRATION_FAILED', `migrating schema "${schema}" failed: ${describe(err)}`, err),
        )
      }
    }
    try {
      await check()
    } catch {
      // reported by check(); writes are still attempted and retried
    }
  })()

  const timer = setInterval(() => {
    reportDrops(false)
    background()
  }, config.flushIntervalMs)
  timer.unref()
  let retentionTimer: NodeJS.Timeout | undefined
  if (config.retentionDays > 0) {
    void startup.then(() => {
      if (!closed && healthy) retentionNow().catch(() => undefined)
    })
    retentionTimer = setInterval(() => {
      if (!closed) retentionNow().catch(() => undefined)
    }, config.retentionIntervalMs)
    retentionTimer.unref()
  }

  async function flush(): Promise<void> {
    await job(queue.length + inflight)
  }

  function close(): Promise<void> {
    if (closing) return closing
    closed = true
    clearInterval(timer)
    if (retentionTimer) clearInterval(retentionTimer)
    closing = (async () => {
      let error: GatehouseError | undefined
      try {
        await job(Number.POSITIVE_INFINITY)
      } catch (err) {
        const lost = queue.length
        dropped += lost
        forget(queue.splice(0, lost))
        error = failure(
          'GH_STORAGE_WRITE_FAILED',
          `closing: ${lost} queued row(s) could not be written to PostgreSQL at ${where}: ${err instanceof GatehouseError ? err.message.replace(`${PKG}: `, '') : describe(err)}`,
          err,
        )
        logger.error(error.message, { code: error.code, lost })
      }
      reportDrops(true)
      await retention?.catch(() => undefined)
      healthy = false
      if (ownPool) await pool.end().catch(() => undefined)
      if (error) throw error
    })()
    return closing
  }

  return Object.freeze({
    record,
    recordBody,
    flush,
    close,
    check,
    runRetention: retentionNow,
    stats: (): StorageSinkStats => ({ queued: queue.length + inflight, written, dropped, errors }),
    get healthy() {
      return healthy
    },
    get lastError() {
      return lastError
    },
    schema,
  })
}

function safePassword(connectionString: string): string | undefined {
  try {
    const p = decodeURIComponent(new URL(connectionString).password)
    return p.length > 0 ? p : undefined
  } catch {
    return undefined
  }
}
