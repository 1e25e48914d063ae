import { Pool } from 'pg'
import { createStorageSink, type StorageSink } from '@gatehouse/storage'
import { authFailure, count, pgUrl, providerRequest, testDb, type TestDb } from './helpers'
import { fakeClock, recordingLogger, type FakeClock } from '@gatehouse/testing'

let db: TestDb
const sinks: StorageSink[] = []
const open = (options: Omit<Parameters<typeof createStorageSink>[0], 'url' | 'schema'> = {}): StorageSink => {
  const sink = createStorageSink({ url: pgUrl(), schema: db.schema, ...options })
  sinks.push(sink)
  return sink
}

beforeAll(async () => {
  db = await testDb()
})
let clock: FakeClock | undefined
afterEach(async () => {
  clock?.restore()
  await Promise.allSettled(sinks.splice(0).map((s) => s.close()))
  await db.admin.query(`TRUNCATE ${db.schema}.api_requests, ${db.schema}.security_events, ${db.schema}.request_bodies`)
})
afterAll(async () => {
  await db.cleanup()
})

describe('createStorageSink: events into rows', () => {
  it('writes a provider_request event to api_requests, every access-log field in its column', async () => {
    const sink = open()
    sink.record(
      providerRequest(
        { timestamp: '2026-02-19T23:00:00.000Z', request_id: 'req-abc', ip: '::ffff:192.0.2.44', provider: 'openai', user_id: 'key_0011aabb' },
        { method: 'post', path: '/v1/chat/completions', status: 429, duration_ms: 3.25, input_tokens: 1200, output_tokens: 34 },
      ),
    )
    await sink.flush()
    const { rows } = await db.admin.query(`SELECT * FROM ${db.schema}.api_requests`)
    expect(rows).toEqual([
      {
        id: expect.any(String),
        timestamp: new Date('2026-02-19T23:00:00.000Z'),
        request_id: 'req-abc',
        key_id: 'key_0011aabb',
        provider: 'openai',
        ip_address: '192.0.2.44',
        method: 'POST',
        path: '/v1/chat/completions',
        response_status: 429,
        duration_ms: 3.25,
        input_tokens: 1200,
        output_tokens: 34,
        total_tokens: 1234,
        result: 'success',
      },
    ])
    expect(sink.stats()).toEqual({ queued: 0, written: 1, dropped: 0, errors: 0 })
    expect(sink.healthy).toBe(true)
  })

  it('writes every other event type to security_events with details as jsonb', async () => {
    const sink = open()
    const types = ['auth_success', 'auth_failure', 'token_refresh', 'config_change', 'credential_access', 'security_violation'] as const
    for (const t of types) sink.record(authFailure({ event_type: t, user_id: 'key_3f9a12bc', details: { reason: t, n: 1 } }))
    await sink.flush()
    const { rows } = await db.admin.query<{ event_type: string; key_id: string; ip_address: string; details: unknown }>(
      `SELECT event_type, key_id, ip_address, details FROM ${db.schema}.security_events ORDER BY id`,
    )
    expect(rows.map((r) => r.event_type)).toEqual([...types])
    expect(rows[1]).toEqual({ event_type: 'auth_failure', key_id: 'key_3f9a12bc', ip_address: '203.0.113.7', details: { reason: 'auth_failure', n: 1 } })
    expect(await count(db, 'api_requests')).toBe(0)
  })

  it('stores an event whose user agent carries markup as data, under its request id', async () => {
    const sink = open()
    const markup = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    sink.record(authFailure({ request_id: 'req-0007-markup', ip: '203.0.113.50', details: { user_agent: markup } }))
    await sink.flush()
    const { rows } = await db.admin.query(`SELECT event_type, result, ip_address, details FROM ${db.schema}.security_events WHERE request_id = $1`, ['req-0007-markup'])
    expect(rows).toEqual([{ event_type: 'auth_failure', result: 'invalid_key', ip_address: '203.0.113.50', details: { user_agent: markup } }])
  })

  it('writes in batches of batchSize without waiting for the timer', async () => {
    // From the real now: rows stamped with the fake clock's default (2026-01-01) are past the
    // 30-day retention, whose first run after start-up could delete them under the test.
    clock = fakeClock({ now: Date.now() })
    // One connection: check() below queues behind any write the sink has started, so it is a barrier.
    const pool = new Pool({ connectionString: pgUrl(), max: 1 })
    try {
      const sink = createStorageSink({ pool, schema: db.schema, batchSize: 50, flushInterval: '1h' })
      sinks.push(sink)
      // Connected first: pg's connection timeout is a fake timer too, which the hour below would fire.
      await clock.until(() => sink.healthy, 5000, 'the sink to start')
      for (let i = 0; i < 30; i++) sink.record(providerRequest({ request_id: `r-${i}` }))
      // Less than a batch waits for the timer (an hour here) or flush().
      await clock.advance(3_599_999)
      await sink.check()
      expect(sink.stats()).toMatchObject({ queued: 30, written: 0 })
      expect(await count(db, 'api_requests')).toBe(0)
      // A full batch starts a write at once, which takes everything queued.
      for (let i = 30; i < 120; i++) sink.record(providerRequest({ request_id: `r-${i}` }))
      await clock.until(() => sink.stats().written === 120, 5000, 'the batches')
      expect(await count(db, 'api_requests')).toBe(120)
      expect(sink.stats()).toMatchObject({ queued: 0, written: 120, dropped: 0 })
      await sink.close()
    } finally {
      await pool.end()
    }
  })

  it('writes on the flush interval', async () => {
    clock = fakeClock({ now: Date.now() }) // rows stamped now, as above
    const sink = open({ flushInterval: '50ms' })
    await clock.until(() => sink.healthy, 5000, 'the sink to start')
    sink.record(authFailure())
    await clock.advance(50)
    await clock.until(() => sink.stats().written === 1, 2000, 'the write on the interval')
    expect(await count(db, 'security_events')).toBe(1)
  })

  it('keeps what cannot be stored as a value out: bad address, NUL bytes, odd numbers, bad timestamp', async () => {
    const sink = open()
    const before = Date.now()
    sink.record(
      providerRequest(
        { ip: 'unknown', request_id: 'a\u0000b', timestamp: 'not a date' },
        { status: 99999, duration_ms: -1, input_tokens: 1.5, output_tokens: 'x', path: '/v1/\u0000messages' },
      ),
    )
    sink.record(authFailure({ details: { 'k\u0000': 'v\u0000', big: 10n as unknown as number } }))
    await sink.flush()
    const { rows } = await db.admin.query(`SELECT * FROM ${db.schema}.api_requests`)
    expect(rows[0]).toMatchObject({
      ip_address: null,
      request_id: 'ab',
      path: '/v1/messages',
      response_status: null,
      duration_ms: null,
      input_tokens: null,
      output_tokens: null,
      total_tokens: null,
    })
    expect((rows[0] as { timestamp: Date }).timestamp.getTime()).toBeGreaterThanOrEqual(before - 1000)
    const ev = await db.admin.query(`SELECT details FROM ${db.schema}.security_events`)
    expect(ev.rows[0]).toEqual({ details: { k: 'v', big: '10' } })
    expect(sink.stats()).toMatchObject({ written: 2, dropped: 0, errors: 0 })
  })

})

describe('createStorageSink: what the database refuses', () => {
  it('stores a body with an escaped lone surrogate (which jsonb refuses) and an event from year 275760', async () => {
    const sink = open({ storeBodies: true })
    expect(sink.recordBody('req-s', Buffer.from('{"content":"half a pair \\ud800 here","\\udc00":1}'))).toBe(true)
    sink.record(authFailure({ timestamp: '+275760-09-13T00:00:00.000Z', details: { note: 'x\ud83d' } }))
    await sink.flush()
    const { rows } = await db.admin.query(`SELECT body FROM ${db.schema}.request_bodies`)
    expect(rows).toEqual([{ body: { content: 'half a pair \ufffd here', '\ufffd': 1 } }])
    const ev = await db.admin.query<{ year: number; details: unknown }>(`SELECT extract(year FROM timestamp)::int AS year, details FROM ${db.schema}.security_events`)
    expect(ev.rows).toEqual([{ year: new Date().getUTCFullYear(), details: { note: 'x\ufffd' } }])
    expect(sink.stats()).toMatchObject({ written: 2, dropped: 0, errors: 0 })
  })

  it('drops only the row the database refuses as data, not the rest of its batch', async () => {
    const logger = recordingLogger()
    await db.admin.query(`ALTER TABLE ${db.schema}.api_requests ADD CONSTRAINT gh_test_no_evil CHECK (path <> '/evil')`)
    try {
      const sink = open({ logger })
      sink.record(providerRequest({ request_id: 'good-1' }))
      sink.record(providerRequest({ request_id: 'bad' }, { path: '/evil' }))
      sink.record(providerRequest({ request_id: 'good-2' }))
      sink.record(authFailure({ request_id: 'good-3' }))
      await sink.flush()
      const { rows } = await db.admin.query<{ request_id: string }>(
        `SELECT request_id FROM ${db.schema}.api_requests UNION ALL SELECT request_id FROM ${db.schema}.security_events ORDER BY 1`,
      )
      expect(rows.map((r) => r.request_id)).toEqual(['good-1', 'good-2', 'good-3'])
      expect(sink.stats()).toMatchObject({ queued: 0, written: 3, dropped: 1, errors: 1 })
      expect(logger.calls).toContainEqual({
        level: 'error',
        message: expect.stringContaining('PostgreSQL refused a row; it is dropped: new row for relation "api_requests" violates check constraint'),
        meta: { code: 'GH_STORAGE_WRITE_FAILED' },
      })
      expect(sink.healthy).toBe(true)
    } finally {
      await db.admin.query(`ALTER TABLE ${db.schema}.api_requests DROP CONSTRAINT gh_test_no_evil`)
    }
  })

  it('counts something that is not an event as dropped, and never throws', async () => {
    const sink = open()
    expect(() => sink.record(null as never)).not.toThrow()
    expect(() => sink.record({ event_type: 'nope' } as never)).not.toThrow()
    expect(() => sink.record('x' as never)).not.toThrow()
    await sink.flush()
    expect(sink.stats()).toEqual({ queued: 0, written: 0, dropped: 3, errors: 0 })
  })

})

describe('createStorageSink: request bodies', () => {
  it('stores no body unless storeBodies is on', async () => {
    const sink = open()
    expect(sink.recordBody('req-1', { model: 'x', messages: [] })).toBe(false)
    await sink.flush()
    expect(await count(db, 'request_bodies')).toBe(0)
  })

  it('stores bodies masked, queryable as jsonb, and truncates one over maxBodyBytes', async () => {
    const sink = open({ storeBodies: true, maxBodyBytes: 200 })
    const key = `sk-ant-api03-${'A'.repeat(40)}`
    expect(sink.recordBody('req-1', { model: 'claude-x', messages: [{ role: 'user', content: `my key is ${key}` }], api_key: 'plain-secret-value' })).toBe(true)
    expect(sink.recordBody('req-2', Buffer.from(JSON.stringify({ model: 'gpt', n: 1 })))).toBe(true)
    expect(sink.recordBody('req-3', 'x'.repeat(1000))).toBe(true)
    expect(sink.recordBody('req-4', 'x'.repeat(10_000))).toBe(true)
    await sink.flush()
    const { rows } = await db.admin.query<{ request_id: string; body: unknown; bytes: number; truncated: boolean; model: string | null }>(
      `SELECT request_id, body, bytes, truncated, body->>'model' AS model FROM ${db.schema}.request_bodies ORDER BY request_id`,
    )
    expect(rows[0]).toEqual({
      request_id: 'req-1',
      body: { model: 'claude-x', messages: [{ role: 'user', content: 'my key is sk-ant-****' }], api_key: 'plain-****' },
      bytes: expect.any(Number),
      truncated: false,
      model: 'claude-x',
    })
    expect(rows[1]).toMatchObject({ request_id: 'req-2', body: { model: 'gpt', n: 1 }, model: 'gpt', truncated: false })
    expect(rows[2]).toMatchObject({ request_id: 'req-3', body: { _truncated: true, _bytes: 1000 }, truncated: true })
    expect(rows[3]).toMatchObject({ request_id: 'req-4', body: { _truncated: true, _bytes: 10_000 }, truncated: true })
    expect(JSON.stringify(rows)).not.toContain(key)
  })

  it('bounds the bytes of bodies held in the queue', async () => {
    const logger = recordingLogger()
    const sink = open({ storeBodies: true, maxBodyBytes: '1kb', maxQueueBodyBytes: 2500, flushInterval: '1h', logger })
    const body = { text: 'y'.repeat(900) }
    expect([1, 2, 3].map((i) => sink.recordBody(`r${i}`, body))).toEqual([true, true, false])
    expect(sink.stats()).toMatchObject({ queued: 2, dropped: 1 })
    expect(logger.calls.find((c) => c.meta?.code === 'GH_STORAGE_QUEUE_FULL')).toBeDefined()
    await sink.flush()
    expect(sink.recordBody('r4', body)).toBe(true)
    await sink.flush()
    expect(await count(db, 'request_bodies')).toBe(3)
  })

  it('writes events and bodies of one batch in one transaction', async () => {
    const sink = open({ storeBodies: true })
    sink.record(providerRequest({ request_id: 'r1' }))
    sink.record(authFailure({ request_id: 'r1' }))
    sink.recordBody('r1', { a: 1 })
    await sink.flush()
    expect([await count(db, 'api_requests'), await count(db, 'security_events'), await count(db, 'request_bodies')]).toEqual([1, 1, 1])
    expect(sink.stats()).toMatchObject({ written: 3 })
  })

})

describe('createStorageSink: close, check, migrate and pools', () => {
  it('close() writes what is queued, then drops and counts whatever is recorded after it', async () => {
    const sink = open({ flushInterval: '1h' })
    for (let i = 0; i < 10; i++) sink.record(authFailure())
    await sink.close()
    expect(await count(db, 'security_events')).toBe(10)
    sink.record(authFailure())
    expect(sink.stats()).toEqual({ queued: 0, written: 10, dropped: 1, errors: 0 })
    expect(sink.healthy).toBe(false)
    await expect(sink.close()).resolves.toBeUndefined()
  })

  it('reports an unmigrated schema as unhealthy, with the command that fixes it', async () => {
    const logger = recordingLogger()
    const sink = createStorageSink({ url: pgUrl(), schema: `${db.schema}_none`, logger })
    sinks.push(sink)
    await expect(sink.check()).rejects.toMatchObject({
      code: 'GH_STORAGE_SCHEMA_OUTDATED',
      message: expect.stringContaining('gatehouse storage migrate'),
    })
    expect(sink.healthy).toBe(false)
    expect(sink.lastError).toContain('has no Gatehouse tables')
    expect(logger.calls.some((c) => c.level === 'error' && c.meta?.code === 'GH_STORAGE_SCHEMA_OUTDATED')).toBe(true)
  })

  it('migrates at start when migrate is true, then writes', async () => {
    const schema = `${db.schema}_auto`
    const sink = createStorageSink({ url: pgUrl(), schema, migrate: true })
    try {
      sink.record(authFailure())
      await sink.flush()
      expect(sink.healthy).toBe(true)
      const { rows } = await db.admin.query(`SELECT count(*)::int AS n FROM ${schema}.security_events`)
      expect(rows[0]).toEqual({ n: 1 })
    } finally {
      await sink.close()
      await db.admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    }
  })

  it('works on a pool you own and leaves it open', async () => {
    const sink = createStorageSink({ pool: db.admin, schema: db.schema })
    sink.record(authFailure())
    await sink.close()
    expect(await count(db, 'security_events')).toBe(1)
    await expect(db.admin.query('SELECT 1')).resolves.toBeDefined()
  })
})
