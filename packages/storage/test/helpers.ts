import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { Pool, types } from 'pg'
import type { SecurityEvent } from '@gatehouse/core'
import { migrate } from '@gatehouse/storage'

/** The local test server: trust auth on loopback. */
export const PG_HOST = '127.0.0.1'
export const PG_PORT = 5432
export const PG_DATABASE = 'test'
export const pgUrl = (user = 'postgres', extra = ''): string =>
  `postgresql://${user}@${PG_HOST}:${PG_PORT}/${PG_DATABASE}${extra}`

/** Dates as their text (`2026-02-19`), not as local-midnight Date objects. */
const DATE_OID = 1082
const rawDates = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === DATE_OID ? (v: string) => v : types.getTypeParser(oid, format ?? 'text')) as typeof types.getTypeParser,
}

export const random = (bytes = 6): string => randomBytes(bytes).toString('hex')

export interface TestDb {
  /** `gh_test_<random>`, created for this file and dropped by `cleanup()`. */
  schema: string
  /** A superuser pool on the test database, dates as text, search_path set to the schema. */
  admin: Pool
  cleanup(): Promise<void>
}

/** A fresh schema for one test file (optionally migrated). Drop it with `cleanup()`. */
export async function testDb(options: { migrate?: boolean } = {}): Promise<TestDb> {
  const schema = `gh_test_${random()}`
  const admin = new Pool({ connectionString: pgUrl(), max: 3, types: rawDates, options: `-c search_path=${schema}` })
  await admin.query(`CREATE SCHEMA ${schema}`)
  if (options.migrate !== false) await migrate(admin, schema)
  return {
    schema,
    admin,
    cleanup: async () => {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
      await admin.end()
    },
  }
}

export async function count(db: TestDb, table: string): Promise<number> {
  const { rows } = await db.admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${db.schema}.${table}`)
  return Number(rows[0]!.n)
}

/** Overrides where `undefined` removes a field. */
type Overrides = { [K in keyof SecurityEvent]?: SecurityEvent[K] | undefined }

function merge(base: SecurityEvent, overrides: Overrides): SecurityEvent {
  const out: Record<string, unknown> = { ...base }
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete out[k]
    else out[k] = v
  }
  return out as unknown as SecurityEvent
}

export const providerRequest = (overrides: Overrides = {}, details: Record<string, unknown> = {}): SecurityEvent =>
  merge(
    {
      timestamp: new Date().toISOString(),
      event_type: 'provider_request',
      provider: 'claude',
      user_id: 'key_3f9a12bc',
      ip: '192.0.2.10',
      request_id: `req-${random(4)}`,
      result: 'success',
      details: { method: 'POST', path: '/v1/messages', status: 200, duration_ms: 12.5, input_tokens: 10, output_tokens: 20, ...details },
    },
    overrides,
  )

export const authFailure = (overrides: Overrides = {}): SecurityEvent =>
  merge(
    {
      timestamp: new Date().toISOString(),
      event_type: 'auth_failure',
      provider: 'claude',
      ip: '203.0.113.7',
      request_id: `req-${random(4)}`,
      result: 'invalid_key',
      details: { header: 'x-api-key' },
    },
    overrides,
  )

/**
 * A TCP proxy in front of the real PostgreSQL that can be stopped (connections cut, new ones
 * refused) and started again, or made to stall (accept and never answer): a database that goes
 * away and comes back, for real.
 */
export async function pgProxy(): Promise<{
  port: number
  mode: 'up' | 'down' | 'stall'
  setMode(mode: 'up' | 'down' | 'stall'): void
  close(): Promise<void>
}> {
  const sockets = new Set<net.Socket>()
  let mode: 'up' | 'down' | 'stall' = 'up'
  const server = net.createServer((client) => {
    sockets.add(client)
    client.on('close', () => sockets.delete(client))
    client.on('error', () => undefined)
    if (mode === 'down') {
      client.destroy()
      return
    }
    if (mode === 'stall') return
    const upstream = net.connect(PG_PORT, PG_HOST)
    sockets.add(upstream)
    upstream.on('close', () => {
      sockets.delete(upstream)
      client.destroy()
    })
    upstream.on('error', () => client.destroy())
    client.on('close', () => upstream.destroy())
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as net.AddressInfo
  return {
    port,
    get mode() {
      return mode
    },
    setMode(next) {
      mode = next
      if (next !== 'up') for (const s of sockets) s.destroy()
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}
