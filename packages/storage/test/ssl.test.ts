import { createStorageSink } from '@gatehouse/storage'
import { authFailure, count, pgUrl, testDb, type TestDb } from './helpers'
import { recordingLogger } from '@gatehouse/testing'

let db: TestDb

beforeAll(async () => {
  db = await testDb()
})
afterAll(async () => {
  await db.cleanup()
})

describe('sslmode', () => {
  // The local test server has no TLS: a URL that requires it must fail, clearly, and never write in plaintext.
  it.each(['require', 'verify-full', 'verify-ca'])('sslmode=%s against a server without TLS fails with a clear error and an unhealthy sink', async (mode) => {
    const logger = recordingLogger()
    const sink = createStorageSink({
      url: pgUrl('postgres', `?sslmode=${mode}`),
      schema: db.schema,
      logger,
      connectTimeout: '2s',
    })
    try {
      await expect(sink.check()).rejects.toMatchObject({
        code: 'GH_STORAGE_CONNECT_FAILED',
        message: expect.stringContaining(
          `cannot use PostgreSQL at 127.0.0.1:5432/test (sslmode=${mode}): The server does not support SSL connections; sslmode=${mode} requires TLS, so the connection is not retried without it`,
        ),
      })
      expect(sink.healthy).toBe(false)
      sink.record(authFailure())
      await expect(sink.flush()).rejects.toMatchObject({ code: 'GH_STORAGE_WRITE_FAILED', message: expect.stringContaining('does not support SSL') })
      expect(sink.healthy).toBe(false)
      expect(sink.lastError).toContain('not retried without it')
      // Nothing reached the database over a plaintext connection.
      expect(await count(db, 'security_events')).toBe(0)
      expect(logger.calls.some((c) => c.level === 'error' && /does not support SSL/.test(c.message))).toBe(true)
    } finally {
      await sink.close().catch(() => undefined)
    }
  })

  it.each(['prefer', 'allow'])('refuses sslmode=%s, which could fall back to plaintext, at construction', (mode) => {
    expect(() => createStorageSink({ url: pgUrl('postgres', `?sslmode=${mode}`) })).toThrow(
      expect.objectContaining({ code: 'GH_STORAGE_INVALID_URL', message: expect.stringContaining(`sslmode=${mode} may fall back to an unencrypted connection`) }),
    )
  })

  it('writes with sslmode=disable (a database on this host)', async () => {
    const sink = createStorageSink({ url: pgUrl('postgres', '?sslmode=disable'), schema: db.schema })
    sink.record(authFailure())
    await sink.close()
    expect(await count(db, 'security_events')).toBe(1)
  })
})
