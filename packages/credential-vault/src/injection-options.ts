import { createOptionsResolver, isLogger, type Logger, type SecurityEventHandler } from '@gatehouse/core'
import { PKG, configError } from './errors'
import type { CredentialSource } from './types'

/** Options of the `credentialInjection` middleware. */
export interface CredentialInjectionOptions {
  /** The vault the credentials come from (`createCredentialVault(...)`). Required. */
  vault: CredentialSource
  /**
   * More client request headers to remove before the request goes upstream, besides the built-in
   * list (authorization, proxy-authorization, x-api-key, x-goog-api-key, api-key, cookie).
   * @default []
   */
  stripHeaders?: string[] | undefined
  /**
   * Also write the upstream headers into `req.headers`, so a proxy that copies the incoming
   * headers (http-proxy-middleware does) sends them without an `on.proxyReq` hook. Turn off when
   * the proxy applies them with `applyUpstreamCredential(proxyReq, res)`, so no later middleware
   * sees the secret in `req.headers`.
   * @default true
   */
  setRequestHeaders?: boolean | undefined
  /**
   * Report the response status to the vault when the response finishes (bookkeeping: a status
   * alone never takes a credential out of service; a proxy with proof calls
   * `upstreamCredentialOf(res).reject(reason)`). Turn off to report from the proxy's
   * `on.proxyRes` with `reportUpstreamStatus(res, status)`.
   * @default true
   */
  autoReport?: boolean | undefined
  /**
   * Emit the `credential_access` "granted" event for a credential and client key at most once per
   * this many milliseconds (0: on every request). The credential id of every request is also in
   * `res.locals.gatehouse.credentialVault` for an access log to record. @default 0
   */
  grantEventInterval?: number | undefined
  /** Receives `credential_access` events; defaults to the vault's onEvent. */
  onEvent?: SecurityEventHandler | undefined
  /** @default the vault's logger */
  logger?: Logger | undefined
}

export interface CredentialInjectionConfig {
  readonly vault: CredentialSource
  readonly stripHeaders: readonly string[]
  readonly setRequestHeaders: boolean
  readonly autoReport: boolean
  readonly grantEventInterval: number
  readonly onEvent: SecurityEventHandler | undefined
  readonly logger: Logger
}

const HEADER_NAME = '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$'

export const credentialInjectionOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    stripHeaders: { type: 'array', items: { type: 'string', pattern: HEADER_NAME }, maxItems: 100 },
    setRequestHeaders: { type: 'boolean' },
    autoReport: { type: 'boolean' },
    grantEventInterval: { type: 'integer', minimum: 0 },
  },
} as const

const INJECTION_HAND_CHECKED = ['vault', 'onEvent', 'logger'] as const
const resolveInjectionData = createOptionsResolver<Omit<CredentialInjectionOptions, (typeof INJECTION_HAND_CHECKED)[number]>>({
  pkg: PKG,
  codePrefix: 'GH_VAULT',
  schema: credentialInjectionOptionsSchema,
  handChecked: INJECTION_HAND_CHECKED,
})

/** The headers a client may have used for its own credential; never forwarded upstream. */
export const CLIENT_CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization', 'x-api-key', 'x-goog-api-key', 'api-key', 'cookie'] as const

export function resolveCredentialInjectionConfig(options: CredentialInjectionOptions): CredentialInjectionConfig {
  const data = resolveInjectionData(options)
  const raw = options as unknown as Record<string, unknown>
  const vault = raw.vault as CredentialSource | undefined
  if (vault === undefined) throw configError('vault: is required (pass the vault from createCredentialVault())')
  if (typeof vault !== 'object' || vault === null || typeof vault.acquire !== 'function' || typeof vault.retryAfterSeconds !== 'function') {
    throw configError('vault: must be a CredentialVault (from createCredentialVault())')
  }
  if (raw.onEvent !== undefined && typeof raw.onEvent !== 'function') throw configError('onEvent: must be a function')
  if (raw.logger !== undefined && !isLogger(raw.logger)) throw configError('logger: must have error, warn, info and debug methods')
  const strip = new Set<string>(CLIENT_CREDENTIAL_HEADERS)
  for (const h of data.stripHeaders ?? []) strip.add(h.toLowerCase())
  return Object.freeze({
    vault,
    stripHeaders: Object.freeze([...strip]),
    setRequestHeaders: data.setRequestHeaders ?? true,
    autoReport: data.autoReport ?? true,
    grantEventInterval: data.grantEventInterval ?? 0,
    onEvent: (raw.onEvent as SecurityEventHandler | undefined) ?? vault.onEvent,
    logger: (raw.logger as Logger | undefined) ?? vault.logger,
  })
}
