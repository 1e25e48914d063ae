import type { ClientBase, Pool } from 'pg'
import { GatehouseError, SECURITY_EVENT_TYPES, maskSecrets } from '@gatehouse/core'
import { StorageErrorCodes } from './errors'
import { withPoolClient } from './pool-client'
import { assertIdentifier, ident } from './sql'

const PKG = '@gatehouse/storage'

/** One schema change. Applied once, in order, inside the migration transaction. */
export interface Migration {
  readonly version: number
  readonly name: string
  /** The SQL, given the quoted schema name. */
  readonly sql: (schema: string) => string
}

const eventTypes = SECURITY_EVENT_TYPES.map((t) => `'${t}'`).join(', ')

/**
 * The migrations, oldest first. Never edit a published one: add the next version.
 *
 * `api_requests` holds one row per `provider_request` event (the access log); `security_events`
 * every other event; `request_bodies` the masked bodies when `storeBodies` is on. Column names
 * follow the monitoring queries of the Claude Nexus Proxy guide (`timestamp`, `ip_address`,
 * `response_status`, `total_tokens`), with `key_id` (a client key's public id) and `provider`.
 */
export const MIGRATIONS: readonly Migration[] = Object.freeze([
  {
    version: 1,
    name: 'api_requests, security_events, request_bodies, retention',
    sql: (s: string) => `
CREATE TABLE ${s}.api_requests (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  timestamp timestamptz NOT NULL,
  request_id text,
  key_id text,
  provider text,
  ip_address inet,
  method text,
  path text,
  response_status integer,
  duration_ms double precision,
  input_tokens integer,
  output_tokens integer,
  total_tokens integer GENERATED ALWAYS AS (
    CASE WHEN input_tokens IS NULL AND output_tokens IS NULL THEN NULL
         ELSE coalesce(input_tokens, 0) + coalesce(output_tokens, 0) END
  ) STORED,
  result text
);
CREATE INDEX api_requests_timestamp_idx ON ${s}.api_requests (timestamp);
CREATE INDEX api_requests_key_id_idx ON ${s}.api_requests (key_id, timestamp);
CREATE INDEX api_requests_ip_address_idx ON ${s}.api_requests (ip_address, timestamp);
CREATE INDEX api_requests_request_id_idx ON ${s}.api_requests (request_id);

CREATE TABLE ${s}.security_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  timestamp timestamptz NOT NULL,
  event_type text NOT NULL CHECK (event_type IN (${eventTypes})),
  provider text,
  key_id text,
  ip_address inet,
  request_id text,
  result text,
  details jsonb
);
CREATE INDEX security_events_timestamp_idx ON ${s}.security_events (timestamp);
CREATE INDEX security_events_type_idx ON ${s}.security_events (event_type, timestamp);
CREATE INDEX security_events_key_id_idx ON ${s}.security_events (key_id, timestamp);

CREATE TABLE ${s}.request_bodies (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  timestamp timestamptz NOT NULL,
  request_id text NOT NULL,
  body jsonb NOT NULL,
  bytes integer NOT NULL,
  truncated boolean NOT NULL DEFAULT false
);
CREATE INDEX request_bodies_request_id_idx ON ${s}.request_bodies (request_id);
CREATE INDEX request_bodies_timestamp_idx ON ${s}.request_bodies (timestamp);

-- Retention runs with the owner's rights, so the writer role needs no DELETE privilege: it may
-- only remove rows older than at least one day through this function.
CREATE FUNCTION ${s}.gatehouse_retention(days integer)
RETURNS TABLE (table_name text, deleted bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  cutoff timestamptz;
  n bigint;
BEGIN
  IF days IS NULL OR days < 1 THEN
    RAISE EXCEPTION 'retention days must be at least 1 (got %)', days;
  END IF;
  cutoff := now() - make_interval(days => days);
  DELETE FROM ${s}.api_requests AS r WHERE r.timestamp < cutoff;
  GET DIAGNOSTICS n = ROW_COUNT;
  table_name := 'api_requests'; deleted := n; RETURN NEXT;
  DELETE FROM ${s}.security_events AS e WHERE e.timestamp < cutoff;
  GET DIAGNOSTICS n = ROW_COUNT;
  table_name := 'security_events'; deleted := n; RETURN NEXT;
  DELETE FROM ${s}.request_bodies AS b WHERE b.timestamp < cutoff;
  GET DIAGNOSTICS n = ROW_COUNT;
  table_name := 'request_bodies'; deleted := n; RETURN NEXT;
END
$fn$;
REVOKE ALL ON FUNCTION ${s}.gatehouse_retention(integer) FROM PUBLIC;
`,
  },
])

/** The schema version this library writes to. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version

/** What `migrate()` did. */
export interface MigrateResult {
  schema: string
  /** Versions applied by this call, in order (empty when the schema was up to date). */
  applied: number[]
  /** The schema's version now. */
  version: number
}

type Queryable = Pool | ClientBase

const isPool = (db: Queryable): db is Pool =>
  typeof (db as { totalCount?: unknown }).totalCount === 'number' && typeof (db as { end?: unknown }).end === 'function'

const withClient = <T>(db: Queryable, fn: (client: ClientBase) => Promise<T>): Promise<T> =>
  isPool(db) ? withPoolClient(db, fn) : fn(db)

const messageOf = (err: unknown): string => maskSecrets(err instanceof Error ? err.message : String(err))

/**
 * Create or upgrade the storage schema. Idempotent and safe to run from several instances at once:
 * the whole run is one transaction under an advisory lock, and `gatehouse_migrations` records each
 * applied version. Run it as the role that owns the tables (the server's `gatehouse storage migrate`).
 */
export async function migrate(db: Queryable, schema = 'gatehouse'): Promise<MigrateResult> {
  assertIdentifier(schema, 'schema')
  const s = ident(schema)
  try {
    return await withClient(db, async (client) => {
      await client.query('BEGIN')
      try {
        await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`gatehouse_migrate:${schema}`])
        // CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists.
        const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])
        if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${s}`)
        await client.query(`CREATE TABLE IF NOT EXISTS ${s}.gatehouse_migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`)
        const done = await client.query<{ version: number }>(`SELECT version FROM ${s}.gatehouse_migrations`)
        const have = new Set(done.rows.map((r) => Number(r.version)))
        const applied: number[] = []
        for (const m of MIGRATIONS) {
          if (have.has(m.version)) continue
          await client.query(m.sql(s))
          await client.query(`INSERT INTO ${s}.gatehouse_migrations (version, name) VALUES ($1, $2)`, [m.version, m.name])
          applied.push(m.version)
        }
        await client.query('COMMIT')
        const version = Math.max(0, ...have, ...applied)
        return { schema, applied, version }
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined)
        throw err
      }
    })
  } catch (err) {
    throw new GatehouseError(
      StorageErrorCodes.GH_STORAGE_MIGRATION_FAILED,
      `${PKG}: migrating schema "${schema}" failed: ${messageOf(err)}`,
      500,
      { cause: err },
    )
  }
}

/**
 * The schema's applied version (0 when never migrated). Needs SELECT on `gatehouse_migrations`,
 * which the writer and reader grants include.
 */
export async function schemaVersion(db: Queryable, schema = 'gatehouse'): Promise<number> {
  assertIdentifier(schema, 'schema')
  try {
    const { rows } = await db.query<{ version: number | null }>(
      `SELECT max(version) AS version FROM ${ident(schema)}.gatehouse_migrations`,
    )
    return Number(rows[0]?.version ?? 0)
  } catch (err) {
    if ((err as { code?: unknown }).code === '42P01' || (err as { code?: unknown }).code === '3F000') return 0
    throw err
  }
}

/** Rows deleted by one retention run, per table. */
export interface RetentionResult {
  api_requests: number
  security_events: number
  request_bodies: number
}

/**
 * Delete rows older than `retentionDays` days from every table (through the `gatehouse_retention`
 * function, so the caller needs EXECUTE on it, not DELETE). Rejects with GH_STORAGE_RETENTION_FAILED.
 */
export async function runRetention(
  db: Queryable,
  options: { schema?: string; retentionDays: number },
): Promise<RetentionResult> {
  const schema = assertIdentifier(options.schema ?? 'gatehouse', 'schema')
  const days = options.retentionDays
  if (!Number.isInteger(days) || days < 1) {
    throw new GatehouseError(
      StorageErrorCodes.GH_STORAGE_RETENTION_FAILED,
      `${PKG}: retentionDays must be a whole number of days, at least 1 (got ${JSON.stringify(days)})`,
    )
  }
  try {
    const { rows } = await db.query<{ table_name: string; deleted: string }>(
      `SELECT table_name, deleted FROM ${ident(schema)}.gatehouse_retention($1)`,
      [days],
    )
    const out: RetentionResult = { api_requests: 0, security_events: 0, request_bodies: 0 }
    for (const r of rows) {
      if (r.table_name in out) out[r.table_name as keyof RetentionResult] = Number(r.deleted)
    }
    return out
  } catch (err) {
    throw new GatehouseError(
      StorageErrorCodes.GH_STORAGE_RETENTION_FAILED,
      `${PKG}: retention in schema "${schema}" failed: ${messageOf(err)}`,
      500,
      { cause: err },
    )
  }
}

/** Role names for `grantsSql()`. */
export interface GrantsOptions {
  /** @default 'gatehouse' */
  schema?: string
  /** The gateway's role: INSERT only (plus running retention). @default 'gatehouse_writer' */
  writer?: string
  /** Dashboards and analysts: SELECT only, request bodies excluded. @default 'gatehouse_reader' */
  reader?: string
  /** When given, also restricts CONNECT on this database to the two roles. @default undefined */
  database?: string
}

/**
 * The least-privilege grants, as SQL to run as the owner of the schema after `migrate()` (and again
 * after an upgrade that adds tables). The roles must exist (`CREATE ROLE … LOGIN PASSWORD …`).
 * The writer can append rows and run retention, and nothing else: no SELECT, UPDATE or DELETE. The
 * reader can SELECT the access log and the security events, and cannot write or see bodies.
 */
export function grantsSql(options: GrantsOptions = {}): string {
  // Names are checked to be plain lower-case identifiers, so they read (and run) unquoted; a
  // reserved word would be a syntax error, never an injection.
  const schema = assertIdentifier(options.schema ?? 'gatehouse', 'schema')
  const writer = assertIdentifier(options.writer ?? 'gatehouse_writer', 'writer')
  const reader = assertIdentifier(options.reader ?? 'gatehouse_reader', 'reader')
  const lines: string[] = []
  if (options.database !== undefined) {
    const db = assertIdentifier(options.database, 'database')
    lines.push(
      `REVOKE ALL ON DATABASE ${db} FROM PUBLIC;`,
      `GRANT CONNECT ON DATABASE ${db} TO ${writer}, ${reader};`,
    )
  }
  lines.push(
    `REVOKE ALL ON SCHEMA ${schema} FROM PUBLIC;`,
    `REVOKE ALL ON ALL TABLES IN SCHEMA ${schema} FROM ${writer}, ${reader};`,
    `GRANT USAGE ON SCHEMA ${schema} TO ${writer}, ${reader};`,
    `GRANT INSERT ON ${schema}.api_requests, ${schema}.security_events, ${schema}.request_bodies TO ${writer};`,
    `GRANT SELECT ON ${schema}.gatehouse_migrations TO ${writer}, ${reader};`,
    `GRANT EXECUTE ON FUNCTION ${schema}.gatehouse_retention(integer) TO ${writer};`,
    `GRANT SELECT ON ${schema}.api_requests, ${schema}.security_events TO ${reader};`,
  )
  return `${lines.join('\n')}\n`
}
