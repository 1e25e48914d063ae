import type { ClientRequest, ServerResponse } from 'node:http'
import type { RequestHandler } from 'express'
import {
  createRepeatFilter,
  emitSecurityEvent,
  gatehouseLocals,
  isProviderName,
  clientIp,
  resolveProviderRoute,
  sendProviderError,
  type ProviderName,
} from '@gatehouse/core'
import { CredentialVaultErrorCodes, PKG } from './errors'
import { resolveCredentialInjectionConfig, type CredentialInjectionOptions } from './injection-options'
import type { CredentialType } from './record'
import type { CredentialLease } from './types'

declare module '@gatehouse/core' {
  interface GatehouseLocals {
    /** What credential injection did for this request. Never holds a secret. */
    credentialVault?: {
      /** The vault credential id (or `static_<provider>`) used upstream. */
      credentialId: string
      provider: ProviderName
      type: CredentialType
      source: 'vault' | 'static'
      /** The names of the headers set upstream; their values are not kept here. */
      injectedHeaders: string[]
    }
  }
}

/**
 * Where the header values live: a non-enumerable symbol property of `res.locals`, so they are
 * never serialised with the locals, and a second copy of this package finds them too.
 */
const UPSTREAM = Symbol.for('gatehouse.credential-vault.upstream')

interface UpstreamState {
  readonly headers: Readonly<Record<string, string>>
  /** Lower-cased header names. */
  readonly strip: ReadonlySet<string>
  readonly lease: CredentialLease
}

function stateOf(res: ServerResponse): UpstreamState | undefined {
  const locals = (res as ServerResponse & { locals?: Record<PropertyKey, unknown> }).locals
  return locals?.[UPSTREAM] as UpstreamState | undefined
}

/** Append the OAuth beta flag to the client's own `anthropic-beta` list, once. */
function mergeBeta(client: string | string[] | undefined, ours: string): string {
  const list = (Array.isArray(client) ? client.join(',') : (client ?? ''))
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  if (!list.includes(ours)) list.push(ours)
  return list.join(',')
}

/**
 * Upstream credential injection (SPEC §3): picks a credential for the request's provider from the
 * vault (round robin over healthy ones), removes every client credential header, and sets the
 * provider's headers: `x-api-key` (Anthropic API key), `Authorization: Bearer` +
 * `anthropic-beta: oauth-2025-04-20` (Anthropic OAuth), `Authorization: Bearer` (OpenAI),
 * `x-goog-api-key` (Gemini). No credential available → 503 in the provider's error shape.
 * Requests that are not for a provider pass through untouched.
 */
export function credentialInjection(options: CredentialInjectionOptions): RequestHandler {
  const config = resolveCredentialInjectionConfig(options)
  const { vault } = config
  const grantDue = createRepeatFilter(config.grantEventInterval)
  const stripSet: ReadonlySet<string> = new Set(config.stripHeaders)
  return function credentialInjectionMiddleware(req, res, next) {
    const locals = gatehouseLocals(res)
    const provider: ProviderName | undefined = isProviderName(locals.provider)
      ? locals.provider
      : resolveProviderRoute(req.path)?.provider
    if (provider === undefined) {
      next()
      return
    }
    const clientBeta = req.headers['anthropic-beta']
    for (const name of config.stripHeaders) delete req.headers[name]
    const context = {
      provider,
      ip: clientIp(req),
      ...(locals.requestId !== undefined ? { request_id: locals.requestId } : {}),
      ...(locals.clientKeyId !== undefined ? { user_id: locals.clientKeyId } : {}),
    }
    const onLease = (lease: CredentialLease | undefined): void => {
      if (!lease) {
        const retryAfter = vault.retryAfterSeconds(provider)
        config.logger.warn(`${PKG}: no upstream credential available`, { provider })
        emitSecurityEvent(config.onEvent, {
          ...context,
          event_type: 'credential_access',
          result: 'unavailable',
          details: {
            code: CredentialVaultErrorCodes.GH_VAULT_NO_CREDENTIAL,
            ...(retryAfter !== undefined ? { retry_after_s: retryAfter } : {}),
          },
        })
        sendProviderError(
          res,
          provider,
          503,
          { message: `No upstream credential is available for provider "${provider}"` },
          retryAfter !== undefined ? { 'Retry-After': retryAfter } : {},
        )
        return
      }
      // The lease's headers are frozen; a copy is made only to merge the client's beta flags.
      const beta = lease.headers['anthropic-beta']
      const headers: Readonly<Record<string, string>> =
        beta === undefined
          ? lease.headers
          : Object.freeze({ ...lease.headers, 'anthropic-beta': mergeBeta(clientBeta, beta) })
      const state: UpstreamState = { headers, strip: stripSet, lease }
      Object.defineProperty(res.locals, UPSTREAM, {
        value: state,
        enumerable: false,
        configurable: true,
        writable: false,
      })
      locals.credentialVault = {
        credentialId: lease.credentialId,
        provider,
        type: lease.type,
        source: lease.source,
        injectedHeaders: Object.keys(headers),
      }
      if (config.setRequestHeaders) Object.assign(req.headers, headers)
      if (config.autoReport) res.once('finish', () => lease.report(res.statusCode))
      if (grantDue(`${lease.credentialId}|${locals.clientKeyId ?? ''}`)) {
        emitSecurityEvent(config.onEvent, {
          ...context,
          event_type: 'credential_access',
          result: 'granted',
          details: { credential_id: lease.credentialId, credential_type: lease.type, source: lease.source },
        })
      }
      next()
    }
    // A usable credential is handed over at once; only one that must be refreshed first is awaited.
    let got: CredentialLease | undefined | Promise<CredentialLease | undefined>
    try {
      got = vault.acquireNowOrLater ? vault.acquireNowOrLater(provider) : vault.acquire(provider)
    } catch (err) {
      next(err)
      return
    }
    if (got instanceof Promise) got.then(onLease, (err: unknown) => next(err))
    else onLease(got)
  }
}

/**
 * Apply the credential chosen for this request to the outgoing proxy request: remove every client
 * credential header, set the upstream ones. For http-proxy-middleware:
 * `on: { proxyReq: (proxyReq, req, res) => applyUpstreamCredential(proxyReq, res) }`.
 * Returns false when the request had no credential injected (or headers were already sent).
 */
export function applyUpstreamCredential(proxyReq: ClientRequest, res: ServerResponse): boolean {
  const state = stateOf(res)
  if (!state || proxyReq.headersSent) return false
  // (A state set by another copy of this package may hold the names as an array.)
  const strip = state.strip instanceof Set ? state.strip : new Set(state.strip as Iterable<string>)
  for (const name of proxyReq.getHeaderNames()) if (strip.has(name)) proxyReq.removeHeader(name)
  for (const name in state.headers) proxyReq.setHeader(name, state.headers[name]!)
  return true
}

/**
 * Report the upstream status for the credential this request used (from `on.proxyRes`), when
 * `autoReport` is off. Bookkeeping only: no status takes a credential out of service (see
 * `upstreamCredentialOf(res).reject` for the proof that does). Returns false when no credential
 * was injected.
 */
export function reportUpstreamStatus(res: ServerResponse, status: number): boolean {
  const state = stateOf(res)
  if (!state) return false
  state.lease.report(status)
  return true
}

/**
 * The credential chosen for this request, for a proxy layer that sets headers itself:
 * `{ headers, report(status), reject(reason) }`, or undefined when none was injected. `headers`
 * holds the secret. Call `reject` only when the provider's answer proves the credential bad.
 */
export function upstreamCredentialOf(res: ServerResponse):
  | { headers: Readonly<Record<string, string>>; report: (status: number) => void; reject: (reason: string) => void }
  | undefined {
  const state = stateOf(res)
  if (!state) return undefined
  const lease = state.lease
  return { headers: state.headers, report: (status: number) => lease.report(status), reject: (reason: string) => lease.reject(reason) }
}
