import { Client } from 'pg'
import { MIGRATIONS, SCHEMA_VERSION, migrate, schemaVersion } from '@gatehouse/storage'
import { pgUrl, random, testDb, type TestDb } from './helpers'

let db: TestDb

beforeAll(async () => {
  db = await testDb({ migrate: false })
})
afterAll(async () => {
  await db.cleanup()
})

const columns = async (table: string): Promise<string[]> => {
  const { rows } = await db.admin.query<{ column_name: string }>(
    'SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position',
    [db.schema, table],
  )
  return rows.map((r) => r.column_name)
}

describe('migrate', () => {
  it('creates the tables the monitoring queries use, and records the version', async () => {
    expect(await schemaVersion(db.admin, db.schema)).toBe(0)
    await expect(migrate(db.admin, db.schema)).resolves.toEqual({ schema: db.schema, applied: MIGRATIONS.map((m) => m.version), version: SCHEMA_VERSION })
    expect(await columns('api_requests')).toEqual([
      'id', 'timestamp', 'request_id', 'key_id', 'provider', 'ip_address', 'method', 'path',
      'response_status', 'duration_ms', 'input_tokens', 'output_tokens', 'total_tokens', 'result',
    ])
    expect(await columns('security_events')).toEqual([
      'id', 'timestamp', 'event_type', 'provider', 'key_id', 'ip_address', 'request_id', 'result', 'details',
    ])
    expect(await columns('request_bodies')).toEqual(['id', 'timestamp', 'request_id', 'body', 'bytes', 'truncated'])
    const { rows } = await db.admin.query(`SELECT version, name FROM ${db.schema}.gatehouse_migrations ORDER BY version`)
    expect(rows).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })))
    expect(await schemaVersion(db.admin, db.schema)).toBe(SCHEMA_VERSION)
  })

  it('is idempotent: a second run applies nothing', async () => {
    await expect(migrate(db.admin, db.schema)).resolves.toEqual({ schema: db.schema, applied: [], version: SCHEMA_VERSION })
  })

  it('lets several instances migrate a new schema at once (one does the work, under a lock)', async () => {
    const schema = `gh_test_${random()}`
    const clients = [new Client({ connectionString: pgUrl() }), new Client({ connectionString: pgUrl() }), new Client({ connectionString: pgUrl() })]
    try {
      await Promise.all(clients.map((c) => c.connect()))
      const results = await Promise.all(clients.map((c) => migrate(c, schema)))
      expect(results.map((r) => r.applied.length).sort()).toEqual([0, 0, MIGRATIONS.length])
      expect(results.every((r) => r.version === SCHEMA_VERSION)).toBe(true)
    } finally {
      await db.admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
      await Promise.all(clients.map((c) => c.end()))
    }
  })

  it('refuses a schema name that is not a plain identifier, before any SQL', async () => {
    await expect(migrate(db.admin, 'x"; DROP TABLE y; --')).rejects.toMatchObject({ code: 'GH_STORAGE_INVALID_SCHEMA' })
    await expect(migrate(db.admin, 'Public')).rejects.toMatchObject({ code: 'GH_STORAGE_INVALID_SCHEMA' })
  })

  it('rolls back and names the schema when the role may not create it', async () => {
    const role = `gh_test_${random()}_nocreate`
    const schema = `gh_test_${random()}`
    await db.admin.query(`CREATE ROLE ${role} LOGIN`)
    const client = new Client({ connectionString: pgUrl(role) })
    try {
      await client.connect()
      await expect(migrate(client, schema)).rejects.toMatchObject({
        code: 'GH_STORAGE_MIGRATION_FAILED',
        message: expect.stringMatching(new RegExp(`migrating schema "${schema}" failed: permission denied`)),
      })
      const { rowCount } = await db.admin.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])
      expect(rowCount).toBe(0)
    } finally {
      await client.end()
      await db.admin.query(`DROP ROLE ${role}`)
    }
  })
})
