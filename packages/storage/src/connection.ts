import { Pool } from 'pg'
import { GatehouseError, createMasker, type Masker } from '@gatehouse/core'
import { StorageErrorCodes, type StorageErrorCode } from './errors'
import { PKG, type StorageSinkConfig } from './options'

/** The sink's database connection: the pool, the masker its messages go through, and how it describes failures. */
export interface SinkConnection {
  readonly pool: Pool
  /** True when the sink created the pool (and so ends it at close). */
  readonly ownPool: boolean
  /** Masks rows and messages: the built-in formats, `knownSecrets` and the URL's password. */
  readonly mask: Masker
  /** `host:5432/db (sslmode=verify-full)`: never the URL, which may hold a password. */
  readonly where: string
  /** A masked, readable message for a failure, with a note when TLS was required and not offered. */
  describe(err: unknown): string
}

function rawMessage(err: unknown): string {
  if (err instanceof AggregateError && err.message === '') {
    return err.errors.map((e: unknown) => rawMessage(e)).join('; ')
  }
  if (err instanceof Error) return err.message || String((err as { code?: unknown }).code ?? err.name)
  return String(err)
}

function safePassword(connectionString: string): string | undefined {
  try {
    const p = decodeURIComponent(new URL(connectionString).password)
    return p.length > 0 ? p : undefined
  } catch {
    return undefined
  }
}

/** A `GatehouseError` of this package (503: the database is a dependency of the gateway). */
export const failure = (code: StorageErrorCode, message: string, cause?: unknown): GatehouseError =>
  new GatehouseError(StorageErrorCodes[code], `${PKG}: ${message}`, 503, cause === undefined ? undefined : { cause })

/** The given pool, or a small one of the sink's own, with an `error` listener so an idle failure cannot crash the process. */
export function openConnection(config: StorageSinkConfig): SinkConnection {
  const password = config.connectionString ? safePassword(config.connectionString) : undefined
  const mask = createMasker({ knownSecrets: [...config.knownSecrets, ...(password ? [password] : [])] })
  const ownPool = config.pool === undefined
  const pool =
    config.pool ??
    new Pool({
      connectionString: config.connectionString,
      max: config.poolSize,
      connectionTimeoutMillis: config.connectTimeoutMs,
      query_timeout: config.queryTimeoutMs,
      idleTimeoutMillis: 30_000,
      allowExitOnIdle: true,
      keepAlive: true,
      application_name: 'gatehouse-storage',
    })
  const { sslmode, description } = config.target
  const where = `${description}${sslmode ? ` (sslmode=${sslmode})` : ''}`
  const describe = (err: unknown): string => {
    let msg = mask.text(rawMessage(err))
    if (/does not support SSL|SSL|TLS|certificate/i.test(msg) && sslmode && sslmode !== 'disable') {
      msg += `; sslmode=${sslmode} requires TLS, so the connection is not retried without it`
    }
    return msg
  }
  if (ownPool) {
    pool.on('error', (err) => config.logger.warn(`${PKG}: an idle PostgreSQL connection to ${where} failed: ${describe(err)}`))
  }
  return { pool, ownPool, mask, where, describe }
}
