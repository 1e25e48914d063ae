import { createStorageSink, runRetention, type StorageSink } from '@gatehouse/storage'
import { authFailure, count, pgUrl, providerRequest, testDb, type TestDb } from './helpers'
import { fakeClock, recordingLogger, type FakeClock } from '@gatehouse/testing'

let db: TestDb
const sinks: StorageSink[] = []
let clock: FakeClock | undefined
const daysAgo = (n: number): string => new Date(Date.now() - n * 86_400_000).toISOString()

beforeAll(async () => {
  db = await testDb()
})
afterEach(async () => {
  clock?.restore()
  await Promise.allSettled(sinks.splice(0).map((s) => s.close()))
  await db.admin.query(`TRUNCATE ${db.schema}.api_requests, ${db.schema}.security_events, ${db.schema}.request_bodies`)
})
afterAll(async () => {
  await db.cleanup()
})

/** Old and recent rows in every table, written through a sink that keeps everything. */
async function seed(): Promise<void> {
  const sink = createStorageSink({ url: pgUrl(), schema: db.schema, storeBodies: true, retentionDays: 0 })
  sink.record(providerRequest({ request_id: 'old', timestamp: daysAgo(40) }))
  sink.record(providerRequest({ request_id: 'recent', timestamp: daysAgo(29) }))
  sink.record(authFailure({ request_id: 'old', timestamp: daysAgo(31) }))
  sink.record(authFailure({ request_id: 'recent', timestamp: daysAgo(1) }))
  sink.recordBody('old', { a: 1 })
  sink.recordBody('recent', { a: 2 })
  await sink.close()
  // A body's time is when it was recorded: age one.
  await db.admin.query(`UPDATE ${db.schema}.request_bodies SET timestamp = now() - interval '45 days' WHERE request_id = 'old'`)
}

const remaining = async (): Promise<string[]> => {
  const { rows } = await db.admin.query<{ t: string }>(
    `SELECT 'r:' || request_id AS t FROM ${db.schema}.api_requests
     UNION ALL SELECT 'e:' || request_id FROM ${db.schema}.security_events
     UNION ALL SELECT 'b:' || request_id FROM ${db.schema}.request_bodies ORDER BY 1`,
  )
  return rows.map((r) => r.t)
}

describe('retention', () => {
  it('runRetention() deletes rows older than retentionDays from every table and keeps the rest', async () => {
    await seed()
    const logger = recordingLogger()
    const sink = createStorageSink({ url: pgUrl(), schema: db.schema, retentionDays: 30, retentionInterval: '1h', logger })
    sinks.push(sink)
    // The start-up run may already have done it; an explicit run then finds nothing left.
    const first = await sink.runRetention()
    const total = first.api_requests + first.security_events + first.request_bodies
    expect([0, 3]).toContain(total)
    expect(await remaining()).toEqual(['b:recent', 'e:recent', 'r:recent'])
    expect(logger.calls).toContainEqual({
      level: 'info',
      message: '@gatehouse/storage: retention deleted 3 row(s) older than 30 days',
      meta: { api_requests: 1, security_events: 1, request_bodies: 1 },
    })
  })

  it('runs on its own after start and then every retentionInterval', async () => {
    await seed()
    clock = fakeClock()
    const sink = createStorageSink({ url: pgUrl(), schema: db.schema, retentionDays: 30, retentionInterval: '1s' })
    sinks.push(sink)
    await clock.until(async () => (await remaining()).length === 3, 3000, 'the run at start')
    // A row that turns old later goes on the next scheduled run.
    await db.admin.query(`UPDATE ${db.schema}.security_events SET timestamp = now() - interval '60 days'`)
    await clock.advance(1000)
    await clock.until(async () => (await count(db, 'security_events')) === 0, 3000, 'the run at the interval')
    expect(await remaining()).toEqual(['b:recent', 'r:recent'])
  })

  it('keeps everything with retentionDays 0', async () => {
    await seed()
    const sink = createStorageSink({ url: pgUrl(), schema: db.schema, retentionDays: 0 })
    sinks.push(sink)
    await expect(sink.runRetention()).resolves.toEqual({ api_requests: 0, security_events: 0, request_bodies: 0 })
    expect(await remaining()).toHaveLength(6)
  })

  it('reports a failed run with GH_STORAGE_RETENTION_FAILED', async () => {
    const logger = recordingLogger()
    const sink = createStorageSink({ url: pgUrl(), schema: `${db.schema}_missing`, retentionDays: 30, logger })
    sinks.push(sink)
    await expect(sink.runRetention()).rejects.toMatchObject({ code: 'GH_STORAGE_RETENTION_FAILED' })
    expect(logger.calls.some((c) => c.level === 'error' && c.meta?.code === 'GH_STORAGE_RETENTION_FAILED')).toBe(true)
    expect(sink.stats().errors).toBeGreaterThan(0)
  })

  it('refuses fewer than one day when called directly', async () => {
    await expect(runRetention(db.admin, { schema: db.schema, retentionDays: 0 })).rejects.toMatchObject({ code: 'GH_STORAGE_RETENTION_FAILED' })
  })
})
