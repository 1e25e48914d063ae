import { createOptionsResolver, isLogger, GatehouseConfigError, type Logger, type SecurityEventHandler } from '@gatehouse/core'
import type { Request } from 'express'
import type { ClientKeyRecord, ClientKeyStore } from './store'
import { jwtVerifier, type JwtAuthOptions, type JwtIdentity } from './jwt'

export interface ClientAuthOptions {
  /** Where keys are looked up (FileKeyStore, MemoryKeyStore or your own). Required. */
  store: ClientKeyStore
  /**
   * Decoy keys that never authenticate: presenting one is a `security_violation`.
   * The keys printed in Gatehouse's docs and example config are always included.
   * @default []
   */
  honeytokens?: string[]
  /**
   * Query parameters that are refused (400) when present, since a key in a URL ends up in logs.
   * @default ['key', 'api_key', 'apikey', 'api-key', 'access_token', 'token', 'x-api-key']
   */
  refusedQueryParams?: string[]
  /** Remove the client's credential headers from the request once checked. @default true */
  stripCredentials?: boolean
  /** Emit `auth_success` events. @default true */
  emitSuccess?: boolean
  /**
   * Emit `auth_success` for a key and address at most once per this many milliseconds (0: on every
   * request). A gateway's access log already records the key id of every request; this keeps the
   * audit trail to one success line per key and address per interval. @default 0
   */
  successEventInterval?: number
  /** Receives auth_success, auth_failure and security_violation events. */
  onEvent?: SecurityEventHandler
  /** Called when a honeytoken is presented, e.g. to add the caller to a denylist. */
  onHoneytoken?: (info: { ip: string; req: Request }) => void
  /**
   * Also accept JWTs from the company's identity provider (OIDC), verified against its published
   * keys; the caller's identity is `jwt:<sub>`, its scope from the claims named in `scopeClaims`.
   * @default off: only client keys
   */
  jwt?: JwtAuthOptions
  /** @default a no-op logger */
  logger?: Logger
}

export interface ClientAuthConfig {
  readonly store: ClientKeyStore
  readonly honeytokens: readonly string[]
  readonly refusedQueryParams: ReadonlySet<string>
  readonly stripCredentials: boolean
  readonly emitSuccess: boolean
  readonly successEventInterval: number
  readonly onEvent: SecurityEventHandler | undefined
  readonly onHoneytoken: ((info: { ip: string; req: Request }) => void) | undefined
  readonly logger: Logger | undefined
  readonly jwt: ((token: string) => Promise<JwtIdentity>) | undefined
}

export const clientAuthOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    honeytokens: { type: 'array', items: { type: 'string', minLength: 8 } },
    refusedQueryParams: { type: 'array', items: { type: 'string', minLength: 1 } },
    stripCredentials: { type: 'boolean' },
    emitSuccess: { type: 'boolean' },
    successEventInterval: { type: 'integer', minimum: 0 },
  },
} as const

const resolve = createOptionsResolver<ClientAuthOptions>({
  pkg: '@gatehouse/client-auth',
  codePrefix: 'GH_AUTH',
  schema: clientAuthOptionsSchema,
  handChecked: ['store', 'onEvent', 'onHoneytoken', 'logger', 'jwt'],
  secretKeys: ['honeytokens'],
})

const DEFAULT_REFUSED = ['key', 'api_key', 'apikey', 'api-key', 'access_token', 'token', 'x-api-key']

export function resolveClientAuthConfig(options: ClientAuthOptions): ClientAuthConfig {
  const o = resolve(options)
  const store = o.store as Partial<ClientKeyStore> | undefined
  if (!store || typeof store.verify !== 'function' || typeof store.hash !== 'function') {
    throw new GatehouseConfigError(
      'GH_AUTH_STORE_INVALID',
      '@gatehouse/client-auth: store must be a key store with verify(key) and hash(key) (FileKeyStore or MemoryKeyStore)',
    )
  }
  for (const name of ['onEvent', 'onHoneytoken'] as const) {
    if (o[name] !== undefined && typeof o[name] !== 'function') {
      throw new GatehouseConfigError('GH_AUTH_INVALID_OPTIONS', `@gatehouse/client-auth: ${name} must be a function`)
    }
  }
  if (o.logger !== undefined && !isLogger(o.logger)) {
    throw new GatehouseConfigError('GH_AUTH_INVALID_OPTIONS', '@gatehouse/client-auth: logger must have error, warn, info and debug methods')
  }
  return Object.freeze({
    store: o.store,
    honeytokens: Object.freeze([...(o.honeytokens ?? [])]),
    refusedQueryParams: new Set((o.refusedQueryParams ?? DEFAULT_REFUSED).map((p) => p.toLowerCase())),
    stripCredentials: o.stripCredentials ?? true,
    emitSuccess: o.emitSuccess ?? true,
    successEventInterval: o.successEventInterval ?? 0,
    onEvent: o.onEvent,
    onHoneytoken: o.onHoneytoken,
    logger: o.logger,
    jwt: o.jwt === undefined ? undefined : jwtVerifier(o.jwt),
  })
}

export type { ClientKeyRecord }
