import { emitSecurityEvent, type SecurityEvent } from '@gatehouse/core'
import { failure, type SinkConnection } from './connection'
import { StorageErrorCodes } from './errors'
import type { SinkHealth } from './health'
import { PKG, type StorageSinkConfig } from './options'
import { bodyRequestId, bodyValue, isStorableEvent, jsonColumn, roughSize } from './rows'
import { insertBatch, isDataError, type Item } from './writer'

const MAX_BACKOFF_MS = 30_000

/** The bounded queue between `record()` and PostgreSQL: batching, ordering, backoff, and drop reports. */
export interface SinkQueue {
  record(event: SecurityEvent): void
  recordBody(requestId: string, body: unknown): boolean
  /** Write up to `limit` queued items, after any write already under way. Rejects with GH_STORAGE_WRITE_FAILED. */
  write(limit: number): Promise<void>
  /** A background write of everything queued, unless one is under way or a retry is not due. */
  background(): void
  /** Log and emit the drops since the last report (at most once per `reportInterval` unless forced). */
  reportDrops(force: boolean): void
  /** Take no more items; what is queued can still be written. */
  stop(): void
  /** Give up what is still queued (counted as dropped); returns how many. */
  discard(): number
  /** Items queued, including a batch being written. */
  size(): number
}

/** Log and emit dropped events, at most once per `reportInterval`. */
function dropReporter(config: StorageSinkConfig, connection: SinkConnection, health: SinkHealth) {
  let sinceReport = 0
  let lastReport = -Infinity
  const report = (force: boolean): void => {
    if (sinceReport === 0) return
    const now = Date.now()
    if (!force && now - lastReport < config.reportIntervalMs) return
    lastReport = now
    const n = sinceReport
    sinceReport = 0
    config.logger.error(
      `${PKG}: ${n} event(s) dropped: the storage queue is full (maxQueue ${config.maxQueue}) while PostgreSQL at ${connection.where} is slow or unreachable`,
      { code: StorageErrorCodes.GH_STORAGE_QUEUE_FULL, dropped: n, total_dropped: health.counts.dropped },
    )
    emitSecurityEvent(
      config.onEvent,
      { event_type: 'security_violation', result: 'storage_events_dropped', details: { dropped: n, max_queue: config.maxQueue } },
      (err) => config.logger.error(`${PKG}: the onEvent handler threw: ${connection.describe(err)}`),
    )
  }
  const drop = (): void => {
    health.counts.dropped++
    sinceReport++
    report(false)
  }
  return { report, drop }
}

/** A body row, masked and bounded now: a body over `maxBodyBytes` becomes a truncation marker. */
function bodyItem(config: StorageSinkConfig, connection: SinkConnection, requestId: string, body: unknown): Item & { kind: 'body' } {
  const size = roughSize(body)
  const column =
    size !== undefined && size > config.maxBodyBytes * 4
      ? { json: JSON.stringify({ _truncated: true, _bytes: size }), bytes: size, truncated: true }
      : jsonColumn(connection.mask, bodyValue(body), config.maxBodyBytes)
  const row = [new Date().toISOString(), bodyRequestId(connection.mask, requestId), column.json, column.bytes, column.truncated]
  return { kind: 'body', row, bytes: Buffer.byteLength(column.json) }
}

/** One bad row must not sink the batch: write the rows one by one, drop (and count) the ones refused. */
async function writeOneByOne(
  insert: (items: readonly Item[]) => Promise<void>,
  batch: readonly Item[],
  health: SinkHealth,
  config: StorageSinkConfig,
  connection: SinkConnection,
): Promise<void> {
  for (const item of batch) {
    try {
      await insert([item])
      health.counts.written++
    } catch (err) {
      health.counts.dropped++
      config.logger.error(`${PKG}: PostgreSQL refused a row; it is dropped: ${connection.describe(err)}`, {
        code: StorageErrorCodes.GH_STORAGE_WRITE_FAILED,
      })
    }
  }
}

/**
 * The queue. Writes are serialised (one batch at a time, in order); `ready` is awaited before the
 * first one (the start-up migration and check).
 */
export function createQueue(
  config: StorageSinkConfig,
  connection: SinkConnection,
  health: SinkHealth,
  ready: () => Promise<void>,
): SinkQueue {
  const { batchSize, maxQueue } = config
  const { counts } = health
  const queue: Item[] = []
  const drops = dropReporter(config, connection, health)
  let inflight = 0
  let queuedBodyBytes = 0
  let stopped = false
  let failures = 0
  let retryAt = 0
  let backgroundPending = false
  let soon = false
  let chain: Promise<unknown> = Promise.resolve()

  const forget = (items: readonly Item[]): void => {
    for (const item of items) if (item.kind === 'body') queuedBodyBytes -= item.bytes
  }
  const insert = (items: readonly Item[]): Promise<void> => insertBatch(connection.pool, config.schema, connection.mask, items)

  /** The batch stays queued; the next background write waits for the backoff. */
  function requeue(batch: Item[], err: unknown): never {
    queue.unshift(...batch)
    failures++
    const delay = Math.min(MAX_BACKOFF_MS, config.flushIntervalMs * 2 ** Math.min(failures, 16))
    retryAt = Date.now() + delay
    const e = failure(
      'GH_STORAGE_WRITE_FAILED',
      `cannot write to PostgreSQL at ${connection.where}: ${connection.describe(err)} (${queue.length} queued; retrying in ${Math.ceil(delay / 1000)}s)`,
      err,
    )
    health.markUnhealthy(e, queue.length)
    throw e
  }

  async function writeUpTo(limit: number): Promise<void> {
    await ready()
    let done = 0
    while (done < limit && queue.length > 0) {
      const batch = queue.splice(0, batchSize)
      inflight = batch.length
      try {
        await insert(batch)
        counts.written += batch.length
        forget(batch)
        failures = 0
        retryAt = 0
        health.markHealthy()
      } catch (err) {
        counts.errors++
        if (isDataError(err)) {
          await writeOneByOne(insert, batch, health, config, connection)
          forget(batch)
        }
        else requeue(batch, err)
      } finally {
        inflight = 0
      }
      done += batch.length
    }
  }

  function write(limit: number): Promise<void> {
    const run = chain.then(() => writeUpTo(limit))
    chain = run.catch(() => undefined)
    return run
  }

  function background(): void {
    if (backgroundPending || queue.length === 0 || Date.now() < retryAt) return
    backgroundPending = true
    write(queue.length)
      .catch(() => undefined)
      .finally(() => {
        backgroundPending = false
        if (!stopped && queue.length >= batchSize && Date.now() >= retryAt) writeSoon()
      })
  }

  /** Start a write on the next turn of the event loop (once, however many rows arrive meanwhile). */
  function writeSoon(): void {
    if (soon || backgroundPending) return
    soon = true
    setImmediate(() => {
      soon = false
      background()
    }).unref()
  }

  const push = (item: Item): void => {
    queue.push(item)
    if (queue.length >= batchSize) writeSoon()
  }

  return {
    record(event) {
      try {
        if (stopped || !isStorableEvent(event)) counts.dropped++
        else if (queue.length + inflight >= maxQueue) drops.drop()
        else push({ kind: 'event', event: { ...event } })
      } catch {
        // record() never throws into the request that emitted the event.
      }
    },
    recordBody(requestId, body) {
      if (!config.storeBodies) return false
      try {
        if (stopped) counts.dropped++
        else if (queue.length + inflight >= maxQueue) drops.drop()
        else {
          const item = bodyItem(config, connection, requestId, body)
          if (queuedBodyBytes + item.bytes > config.maxQueueBodyBytes) {
            drops.drop()
            return false
          }
          queuedBodyBytes += item.bytes
          push(item)
          return true
        }
        return false
      } catch {
        return false
      }
    },
    write,
    background,
    reportDrops: drops.report,
    stop() {
      stopped = true
    },
    discard() {
      const lost = queue.length
      counts.dropped += lost
      forget(queue.splice(0, lost))
      return lost
    },
    size: () => queue.length + inflight,
  }
}
