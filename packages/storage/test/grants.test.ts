import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Client } from 'pg'
import { createStorageSink, grantsSql } from '@gatehouse/storage'
import { authFailure, count, pgUrl, providerRequest, random, testDb, type TestDb } from './helpers'

let db: TestDb
const writer = `gh_test_${random()}_writer`
const reader = `gh_test_${random()}_reader`

beforeAll(async () => {
  db = await testDb()
  await db.admin.query(`CREATE ROLE ${writer} LOGIN`)
  await db.admin.query(`CREATE ROLE ${reader} LOGIN`)
  // Exactly the SQL the README gives, for this schema and these role names.
  await db.admin.query(grantsSql({ schema: db.schema, writer, reader }))
})
afterAll(async () => {
  await db.cleanup()
  const admin = new Client({ connectionString: pgUrl() })
  await admin.connect()
  await admin.query(`DROP ROLE IF EXISTS ${writer}`)
  await admin.query(`DROP ROLE IF EXISTS ${reader}`)
  await admin.end()
})

async function as<T>(role: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: pgUrl(role) })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}

const denied = { code: '42501', message: expect.stringContaining('permission denied') }

describe('least-privilege grants', () => {
  it('are documented in the README exactly as grantsSql() writes them', () => {
    const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8')
    expect(readme).toContain(grantsSql({ database: 'gatehouse' }))
  })

  it('let the writer role run the sink: check, write, retention', async () => {
    const sink = createStorageSink({ url: pgUrl(writer), schema: db.schema, storeBodies: true, retentionDays: 30 })
    try {
      await sink.check()
      expect(sink.healthy).toBe(true)
      sink.record(providerRequest())
      sink.record(authFailure())
      sink.recordBody('req-1', { model: 'x' })
      await sink.flush()
      await expect(sink.runRetention()).resolves.toEqual({ api_requests: 0, security_events: 0, request_bodies: 0 })
    } finally {
      await sink.close()
    }
    expect([await count(db, 'api_requests'), await count(db, 'security_events'), await count(db, 'request_bodies')]).toEqual([1, 1, 1])
  })

  it('keep the writer from reading, changing or deleting rows', async () => {
    await as(writer, async (c) => {
      for (const table of ['api_requests', 'security_events', 'request_bodies']) {
        await expect(c.query(`SELECT * FROM ${db.schema}.${table}`)).rejects.toMatchObject(denied)
        await expect(c.query(`DELETE FROM ${db.schema}.${table}`)).rejects.toMatchObject(denied)
        await expect(c.query(`UPDATE ${db.schema}.${table} SET request_id = 'x'`)).rejects.toMatchObject(denied)
        await expect(c.query(`TRUNCATE ${db.schema}.${table}`)).rejects.toMatchObject(denied)
      }
      // Retention through the function cannot be turned into "delete everything".
      await expect(c.query(`SELECT * FROM ${db.schema}.gatehouse_retention(0)`)).rejects.toMatchObject({
        message: 'retention days must be at least 1 (got 0)',
      })
      await expect(c.query(`DROP TABLE ${db.schema}.api_requests`)).rejects.toMatchObject({ code: '42501' })
    })
    expect(await count(db, 'api_requests')).toBe(1)
  })

  it('let the reader SELECT the access log and events, and nothing else', async () => {
    await as(reader, async (c) => {
      await expect(c.query(`SELECT count(*) FROM ${db.schema}.api_requests`)).resolves.toMatchObject({ rows: [{ count: '1' }] })
      await expect(c.query(`SELECT count(*) FROM ${db.schema}.security_events`)).resolves.toMatchObject({ rows: [{ count: '1' }] })
      await expect(c.query(`SELECT * FROM ${db.schema}.request_bodies`)).rejects.toMatchObject(denied)
      await expect(
        c.query(`INSERT INTO ${db.schema}.api_requests (timestamp) VALUES (now())`),
      ).rejects.toMatchObject(denied)
      await expect(
        c.query(`INSERT INTO ${db.schema}.security_events (timestamp, event_type) VALUES (now(), 'auth_failure')`),
      ).rejects.toMatchObject(denied)
      await expect(c.query(`DELETE FROM ${db.schema}.security_events`)).rejects.toMatchObject(denied)
      await expect(c.query(`SELECT * FROM ${db.schema}.gatehouse_retention(30)`)).rejects.toMatchObject(denied)
    })
  })

  it('give a role without them nothing at all', async () => {
    const other = `gh_test_${random()}_other`
    await db.admin.query(`CREATE ROLE ${other} LOGIN`)
    try {
      await as(other, async (c) => {
        await expect(c.query(`SELECT * FROM ${db.schema}.security_events`)).rejects.toMatchObject(denied)
        await expect(c.query(`INSERT INTO ${db.schema}.security_events (timestamp, event_type) VALUES (now(), 'auth_failure')`)).rejects.toMatchObject(denied)
      })
    } finally {
      await db.admin.query(`DROP ROLE ${other}`)
    }
  })
})
