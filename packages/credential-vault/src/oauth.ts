import http from 'node:http'
import https from 'node:https'
import { GatehouseError } from '@gatehouse/core'
import { CredentialVaultErrorCodes } from './errors'

/** What a token endpoint returned for a refresh_token grant. */
export interface TokenRefreshResult {
  access_token: string
  refresh_token?: string
  /** Seconds. */
  expires_in?: number
}

/**
 * A failed refresh. `reason` is safe to log and to put in events: an OAuth error code
 * (`invalid_grant`), `timeout`, `network`, `redirect`, `http_<status>` or `invalid_response`;
 * never a token or the endpoint's free-text description.
 */
export class TokenRefreshError extends GatehouseError {
  override name = 'TokenRefreshError'
  constructor(
    readonly reason: string,
    message: string,
    readonly httpStatus?: number,
  ) {
    super(
      reason === 'timeout' ? CredentialVaultErrorCodes.GH_VAULT_REFRESH_TIMEOUT : CredentialVaultErrorCodes.GH_VAULT_REFRESH_FAILED,
      message,
      502,
    )
  }

  /** The refresh token itself was refused: retrying cannot help until an operator replaces it. */
  get permanent(): boolean {
    return ['invalid_grant', 'invalid_client', 'unauthorized_client', 'unsupported_grant_type'].includes(this.reason)
  }
}

const MAX_RESPONSE_BYTES = 64 * 1024
const OAUTH_ERROR = /^[a-z_]{1,64}$/

export interface TokenRefreshRequest {
  tokenUrl: string
  refreshToken: string
  clientId?: string
  scope?: string
  timeoutMs: number
}

/**
 * The standard refresh_token grant (RFC 6749 §6): a form-encoded POST, a JSON answer. Redirects
 * are not followed, the answer is capped at 64 KiB, and the whole exchange is bounded by
 * `timeoutMs`. Uses its own connection (no shared agent), closed afterwards.
 */
export function requestTokenRefresh(req: TokenRefreshRequest): Promise<TokenRefreshResult> {
  const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: req.refreshToken })
  if (req.clientId !== undefined) form.set('client_id', req.clientId)
  if (req.scope !== undefined && req.scope !== '') form.set('scope', req.scope)
  const body = Buffer.from(form.toString(), 'utf8')
  const url = new URL(req.tokenUrl)
  const transport = url.protocol === 'https:' ? https : http

  return new Promise<TokenRefreshResult>((resolve, reject) => {
    let settled = false
    const finish = (err: TokenRefreshError | undefined, result?: TokenRefreshResult): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (err) reject(err)
      else resolve(result!)
    }
    const outgoing = transport.request(
      url,
      {
        method: 'POST',
        agent: false,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
          'content-length': body.length,
          connection: 'close',
        },
      },
      (res) => {
        const status = res.statusCode ?? 0
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size > MAX_RESPONSE_BYTES) {
            finish(new TokenRefreshError('invalid_response', 'the token endpoint answer is too large', status))
            res.destroy()
            return
          }
          chunks.push(chunk)
        })
        res.on('error', () => finish(new TokenRefreshError('network', 'the token endpoint connection failed', status)))
        res.on('end', () => {
          if (settled) return
          let json: unknown
          try {
            json = JSON.parse(Buffer.concat(chunks).toString('utf8'))
          } catch {
            json = undefined
          }
          if (status >= 300 && status < 400) {
            finish(new TokenRefreshError('redirect', `the token endpoint answered ${status} (redirects are not followed)`, status))
            return
          }
          if (status < 200 || status >= 300) {
            const code = (json as { error?: unknown } | undefined)?.error
            const reason = typeof code === 'string' && OAUTH_ERROR.test(code) ? code : `http_${status}`
            finish(new TokenRefreshError(reason, `the token endpoint refused the refresh (${reason})`, status))
            return
          }
          const parsed = parseTokenResponse(json)
          if (!parsed) {
            finish(new TokenRefreshError('invalid_response', 'the token endpoint answer has no valid access_token', status))
            return
          }
          finish(undefined, parsed)
        })
      },
    )
    const timer = setTimeout(() => {
      finish(new TokenRefreshError('timeout', `the token endpoint did not answer within ${req.timeoutMs} ms`))
      outgoing.destroy()
    }, req.timeoutMs)
    timer.unref()
    outgoing.on('error', () => finish(new TokenRefreshError('network', 'the token endpoint could not be reached')))
    outgoing.end(body)
  })
}

const TOKEN = /^[\x21-\x7e]{1,8192}$/

function parseTokenResponse(json: unknown): TokenRefreshResult | undefined {
  if (typeof json !== 'object' || json === null) return undefined
  const o = json as Record<string, unknown>
  if (typeof o.access_token !== 'string' || !TOKEN.test(o.access_token)) return undefined
  const out: TokenRefreshResult = { access_token: o.access_token }
  if (o.refresh_token !== undefined && o.refresh_token !== null) {
    if (typeof o.refresh_token !== 'string' || !TOKEN.test(o.refresh_token)) return undefined
    out.refresh_token = o.refresh_token
  }
  if (o.expires_in !== undefined && o.expires_in !== null) {
    const n = typeof o.expires_in === 'string' ? Number(o.expires_in) : o.expires_in
    if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) return undefined
    out.expires_in = n
  }
  return out
}
