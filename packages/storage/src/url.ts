import { GatehouseConfigError } from '@gatehouse/core'
import { StorageErrorCodes } from './errors'

const PKG = '@gatehouse/storage'

/** Where a sink writes, described without credentials (for messages and logs). */
export interface DatabaseTarget {
  /** `127.0.0.1:5432/gatehouse`: never the user name or the password. */
  readonly description: string
  /** The `sslmode` as written in the URL, if any. */
  readonly sslmode: string | undefined
}

export interface ResolvedDatabaseUrl {
  /** What is handed to pg. */
  readonly connectionString: string
  readonly target: DatabaseTarget
}

/** sslmodes that could end on a plaintext connection in libpq's meaning. */
const DOWNGRADING = new Set(['allow', 'prefer'])
const KNOWN = new Set(['disable', 'require', 'verify-ca', 'verify-full', 'no-verify'])

function invalidUrl(message: string): GatehouseConfigError {
  return new GatehouseConfigError(StorageErrorCodes.GH_STORAGE_INVALID_URL, `${PKG}: ${message}`)
}

/**
 * Check a PostgreSQL URL and return what pg receives. The URL is a secret (it may hold a password):
 * no error quotes it.
 *
 * TLS: `sslmode=require` and `verify-ca` are passed to pg as `verify-full`, which is what pg 8 does
 * with them anyway (the server certificate and host name are verified; `sslrootcert=` gives the CA),
 * without its deprecation warning. A server without TLS is refused; nothing falls back to plaintext.
 * `allow` and `prefer` are refused because in libpq they may do exactly that.
 */
export function resolveDatabaseUrl(url: unknown, name = 'url'): ResolvedDatabaseUrl {
  if (typeof url !== 'string' || url.length === 0) throw invalidUrl(`${name} must be a postgresql:// URL`)
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw invalidUrl(`${name} is not a valid URL (expected postgresql://user:password@host:5432/database)`)
  }
  if (parsed.protocol !== 'postgresql:' && parsed.protocol !== 'postgres:') {
    throw invalidUrl(`${name} must start with postgresql:// or postgres:// (got a ${JSON.stringify(parsed.protocol)} URL)`)
  }
  const sslmode = parsed.searchParams.get('sslmode') ?? undefined
  if (sslmode !== undefined && DOWNGRADING.has(sslmode)) {
    throw invalidUrl(
      `${name}: sslmode=${sslmode} may fall back to an unencrypted connection; use sslmode=require (or verify-full), or sslmode=disable for a database on this host`,
    )
  }
  if (sslmode !== undefined && !KNOWN.has(sslmode)) {
    throw invalidUrl(`${name}: sslmode must be one of disable, require, verify-ca, verify-full, no-verify (got ${JSON.stringify(sslmode)})`)
  }
  const libpqCompat = parsed.searchParams.get('uselibpqcompat') === 'true'
  let connectionString = url
  if (!libpqCompat && (sslmode === 'require' || sslmode === 'verify-ca')) {
    parsed.searchParams.set('sslmode', 'verify-full')
    connectionString = parsed.toString()
  }
  const host = parsed.searchParams.get('host') ?? (decodeURIComponent(parsed.hostname) || 'localhost')
  const port = parsed.searchParams.get('port') ?? (parsed.port || '5432')
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, '')) || '(default database)'
  const description = `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}/${database}`
  return Object.freeze({ connectionString, target: Object.freeze({ description, sslmode }) })
}
