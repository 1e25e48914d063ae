import { performance } from 'node:perf_hooks'
import { collectEvents, freePort, recordingLogger, waitFor } from '@gatehouse/testing'
import { createStorageSink, type StorageSink } from '@gatehouse/storage'
import { authFailure, count, pgProxy, providerRequest, testDb, type TestDb } from './helpers'

let db: TestDb
const sinks: StorageSink[] = []

beforeAll(async () => {
  db = await testDb()
})
afterEach(async () => {
  await Promise.allSettled(sinks.splice(0).map((s) => s.close()))
})
afterAll(async () => {
  await db.cleanup()
})

/** Time 10,000 record() calls, as a request path would make them. */
function record10k(sink: StorageSink): number {
  const events = Array.from({ length: 10_000 }, (_, i) => (i % 2 ? providerRequest() : authFailure()))
  const start = performance.now()
  for (const e of events) sink.record(e)
  return performance.now() - start
}

describe('a database that cannot be reached', () => {
  it('never slows record(): 10,000 calls against a refused port finish well under a second and drop beyond maxQueue', async () => {
    const port = await freePort()
    const logger = recordingLogger()
    const { events, onEvent } = collectEvents()
    const sink = createStorageSink({
      url: `postgresql://gatehouse:pw-${port}-not-logged@127.0.0.1:${port}/gatehouse`,
      maxQueue: 1000,
      flushInterval: '20ms',
      logger,
      onEvent,
    })
    sinks.push(sink)
    const ms = record10k(sink)
    console.log(`10,000 record() calls against an unreachable database: ${ms.toFixed(1)} ms`)
    expect(ms).toBeLessThan(250)
    expect(sink.stats()).toMatchObject({ queued: 1000, dropped: 9000 })

    // Reported once (not 9,000 times), to the logger and as a security event.
    const reports = logger.calls.filter((c) => c.meta?.code === 'GH_STORAGE_QUEUE_FULL')
    expect(reports).toHaveLength(1)
    expect(reports[0]!.level).toBe('error')
    expect(reports[0]!.message).toMatch(/event\(s\) dropped: the storage queue is full \(maxQueue 1000\)/)
    expect(events).toEqual([
      expect.objectContaining({ event_type: 'security_violation', result: 'storage_events_dropped', details: { dropped: 1, max_queue: 1000 } }),
    ])

    await expect(sink.flush()).rejects.toMatchObject({ code: 'GH_STORAGE_WRITE_FAILED', message: expect.stringContaining('ECONNREFUSED') })
    expect(sink.healthy).toBe(false)
    expect(sink.lastError).toContain(`127.0.0.1:${port}/gatehouse`)
    expect(sink.stats().queued).toBe(1000)
    // The URL's password is never part of a message.
    expect(JSON.stringify(logger.calls)).not.toContain(`pw-${port}-not-logged`)
    expect(sink.lastError).not.toContain(`pw-${port}-not-logged`)

    await expect(sink.close()).rejects.toMatchObject({ code: 'GH_STORAGE_WRITE_FAILED', message: expect.stringContaining('1000 queued row(s) could not be written') })
    expect(sink.stats()).toMatchObject({ queued: 0, dropped: 10_000 })
  })

  it('never slows record() against a database that accepts and never answers', async () => {
    const proxy = await pgProxy()
    proxy.setMode('stall')
    const sink = createStorageSink({
      url: `postgresql://postgres@127.0.0.1:${proxy.port}/test`,
      schema: db.schema,
      maxQueue: 5000,
      connectTimeout: '300ms',
      flushInterval: '10ms',
    })
    try {
      const ms = record10k(sink)
      expect(ms).toBeLessThan(250)
      expect(sink.stats()).toMatchObject({ queued: 5000, dropped: 5000 })
      const t0 = performance.now()
      await expect(sink.flush()).rejects.toMatchObject({ code: 'GH_STORAGE_WRITE_FAILED', message: expect.stringMatching(/timeout/i) })
      expect(performance.now() - t0).toBeLessThan(2500)
      expect(sink.healthy).toBe(false)
    } finally {
      await sink.close().catch(() => undefined)
      await proxy.close()
    }
  })

  it('keeps events while the database is down and writes them when it is back', async () => {
    const proxy = await pgProxy()
    const logger = recordingLogger()
    const sink = createStorageSink({
      url: `postgresql://postgres@127.0.0.1:${proxy.port}/test`,
      schema: db.schema,
      flushInterval: '20ms',
      connectTimeout: '500ms',
      logger,
    })
    try {
      await sink.check()
      expect(sink.healthy).toBe(true)
      sink.record(authFailure({ request_id: 'before' }))
      await sink.flush()

      proxy.setMode('down')
      for (let i = 0; i < 50; i++) sink.record(authFailure({ request_id: `while-down-${i}` }))
      await expect(sink.flush()).rejects.toMatchObject({ code: 'GH_STORAGE_WRITE_FAILED' })
      expect(sink.healthy).toBe(false)
      expect(sink.stats()).toMatchObject({ queued: 50, dropped: 0 })
      expect(logger.calls.filter((c) => c.meta?.code === 'GH_STORAGE_WRITE_FAILED')).toHaveLength(1)

      proxy.setMode('up')
      // The first write after the switch may still meet a connection the outage cut (pg reports it
      // as it is used, and the pool then drops it): the queue is kept, and the next flush writes it.
      await waitFor(async () => {
        try {
          await sink.flush()
          return true
        } catch {
          return false
        }
      }, 5000, { what: 'a flush after the database came back' })
      expect(sink.healthy).toBe(true)
      expect(sink.stats()).toMatchObject({ queued: 0, written: 51, dropped: 0 })
      const { rows } = await db.admin.query<{ n: string }>(
        `SELECT count(*) AS n FROM ${db.schema}.security_events WHERE request_id LIKE 'while-down-%'`,
      )
      expect(rows[0]!.n).toBe('50')
      expect(logger.calls.some((c) => c.level === 'info' && /writable again/.test(c.message))).toBe(true)
    } finally {
      await sink.close().catch(() => undefined)
      await proxy.close()
    }
  })

  it('retries on its own with backoff once the database is back', async () => {
    const proxy = await pgProxy()
    proxy.setMode('down')
    const sink = createStorageSink({
      url: `postgresql://postgres@127.0.0.1:${proxy.port}/test`,
      schema: db.schema,
      flushInterval: '20ms',
      connectTimeout: '500ms',
    })
    try {
      sink.record(providerRequest({ request_id: 'retried' }))
      await waitFor(() => sink.stats().errors > 0)
      proxy.setMode('up')
      await waitFor(async () => (await count(db, 'api_requests')) > 0 && sink.stats().queued === 0, 8000)
      expect(sink.healthy).toBe(true)
    } finally {
      await sink.close().catch(() => undefined)
      await proxy.close()
    }
  })
})
