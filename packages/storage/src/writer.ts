import type { Pool } from 'pg'
import type { Masker, SecurityEvent } from '@gatehouse/core'
import { withPoolClient } from './pool-client'
import { BODY_COLUMNS, EVENT_COLUMNS, REQUEST_COLUMNS, eventRow, requestRow } from './rows'
import { insertSql } from './sql'

/** What waits in the queue: an event (turned into a row when written) or a body row, masked already. */
export type Item = { kind: 'event'; event: SecurityEvent } | { kind: 'body'; row: unknown[]; bytes: number }

const sqlstate = (err: unknown): string | undefined => {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

/** Errors in the data itself (SQLSTATE classes 22 and 23): retrying the same rows cannot help. */
export const isDataError = (err: unknown): boolean => {
  const code = sqlstate(err)
  return code !== undefined && (code.startsWith('22') || code.startsWith('23'))
}

/** One multi-row INSERT per table, every value a query parameter. */
function statementsFor(schema: string, mask: Masker, items: readonly Item[]): Array<[string, unknown[]]> {
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
  return statements
}

/** Write one batch: its rows in one transaction (one statement needs none). Rejects with the database's error. */
export async function insertBatch(pool: Pool, schema: string, mask: Masker, items: readonly Item[]): Promise<void> {
  const statements = statementsFor(schema, mask, items)
  if (statements.length === 0) return
  await withPoolClient(pool, async (client) => {
    if (statements.length === 1) {
      await client.query(statements[0]![0], statements[0]![1])
      return
    }
    await client.query('BEGIN')
    try {
      for (const [sql, params] of statements) await client.query(sql, params)
      await client.query('COMMIT')
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined)
      throw err
    }
  })
}
