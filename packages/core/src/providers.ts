import type { IncomingHttpHeaders } from 'node:http'
import type { Request, Response } from 'express'

export const PROVIDER_NAMES = ['claude', 'openai', 'gemini'] as const
export type ProviderName = (typeof PROVIDER_NAMES)[number]

export const isProviderName = (v: unknown): v is ProviderName =>
  typeof v === 'string' && (PROVIDER_NAMES as readonly string[]).includes(v)

export interface ProviderRoute {
  provider: ProviderName
  /** The path to request from the provider's base_url (the `/<provider>` prefix removed). */
  upstreamPath: string
  /** True when the client used the explicit `/<provider>/…` form. */
  prefixed: boolean
}

/** Root paths that are OpenAI's (every other root `/v1/…` path needs the `/<provider>/` prefix). */
const OPENAI_PATHS = [
  '/v1/chat/completions',
  '/v1/completions',
  '/v1/embeddings',
  '/v1/responses',
  '/v1/models',
  '/v1/moderations',
  '/v1/images',
  '/v1/audio',
  '/v1/files',
  '/v1/batches',
  '/v1/fine_tuning',
]

const underPath = (path: string, base: string): boolean =>
  path === base || path.startsWith(`${base}/`) || path.startsWith(`${base}?`)

/**
 * Which provider a request path belongs to (SPEC §3 Routing). `path` is the URL path with the
 * query string removed. Returns undefined for a path no provider serves.
 */
export function resolveProviderRoute(path: string, headers?: IncomingHttpHeaders): ProviderRoute | undefined {
  for (const provider of PROVIDER_NAMES) {
    const prefix = `/${provider}`
    if (path.startsWith(`${prefix}/`)) {
      return { provider, upstreamPath: path.slice(prefix.length), prefixed: true }
    }
  }
  if (underPath(path, '/v1/messages')) return { provider: 'claude', upstreamPath: path, prefixed: false }
  // The Anthropic SDK's model list and file calls share OpenAI's root paths; it always sends
  // anthropic-version, which no OpenAI client does.
  if (headers?.['anthropic-version'] !== undefined && (underPath(path, '/v1/models') || underPath(path, '/v1/files'))) {
    return { provider: 'claude', upstreamPath: path, prefixed: false }
  }
  if (OPENAI_PATHS.some((p) => underPath(path, p))) return { provider: 'openai', upstreamPath: path, prefixed: false }
  if (path.startsWith('/v1beta/')) return { provider: 'gemini', upstreamPath: path, prefixed: false }
  return undefined
}

/**
 * The provider whose error shape a refusal should take: by path first, then by the headers that
 * each provider's SDK sends, OpenAI's shape otherwise.
 */
export function detectProvider(req: Pick<Request, 'path' | 'headers'> | { path: string; headers: IncomingHttpHeaders }): ProviderName {
  const route = resolveProviderRoute(req.path, req.headers)
  if (route) return route.provider
  if (req.headers['anthropic-version'] !== undefined) return 'claude'
  if (req.headers['x-goog-api-key'] !== undefined) return 'gemini'
  return 'openai'
}

/** Details for a provider-native error body. */
export interface ProviderErrorInfo {
  message: string
  /** The request field at fault (OpenAI's `param`). */
  param?: string | null
  /** A machine-readable code (OpenAI's `code`); defaults by status. */
  code?: string | null
  /** Overrides the provider's error type (Anthropic `error.type`, OpenAI `error.type`). */
  type?: string
}

const ANTHROPIC_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  415: 'invalid_request_error',
  429: 'rate_limit_error',
  500: 'api_error',
  502: 'api_error',
  503: 'overloaded_error',
  504: 'timeout_error',
}

const OPENAI_TYPES: Record<number, [type: string, code: string | null]> = {
  400: ['invalid_request_error', null],
  401: ['invalid_request_error', 'invalid_api_key'],
  403: ['invalid_request_error', 'forbidden'],
  404: ['invalid_request_error', 'not_found'],
  413: ['invalid_request_error', 'request_too_large'],
  415: ['invalid_request_error', 'unsupported_media_type'],
  429: ['requests', 'rate_limit_exceeded'],
  500: ['server_error', null],
  502: ['server_error', 'bad_gateway'],
  503: ['server_error', 'service_unavailable'],
  504: ['server_error', 'timeout'],
}

const GEMINI_STATUS: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  413: 'INVALID_ARGUMENT',
  415: 'INVALID_ARGUMENT',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  502: 'UNAVAILABLE',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
}

const family = (status: number): number => (status >= 500 ? 500 : 400)

/** The error body each provider's SDK expects (SPEC §3 Refusals). */
export function providerErrorBody(provider: ProviderName, status: number, info: ProviderErrorInfo): unknown {
  switch (provider) {
    case 'claude':
      return {
        type: 'error',
        error: { type: info.type ?? ANTHROPIC_TYPES[status] ?? ANTHROPIC_TYPES[family(status)], message: info.message },
      }
    case 'gemini':
      return {
        error: { code: status, message: info.message, status: GEMINI_STATUS[status] ?? GEMINI_STATUS[family(status)] },
      }
    case 'openai': {
      const [type, code] = OPENAI_TYPES[status] ?? OPENAI_TYPES[family(status)] ?? ['server_error', null]
      return {
        error: {
          message: info.message,
          type: info.type ?? type,
          param: info.param ?? null,
          code: info.code === undefined ? code : info.code,
        },
      }
    }
  }
}

/**
 * Send a gateway-made error in the provider's shape, with `Cache-Control: no-store`.
 * Extra headers (Retry-After, WWW-Authenticate) are set first. Does nothing if headers were sent.
 */
export function sendProviderError(
  res: Response,
  provider: ProviderName,
  status: number,
  info: ProviderErrorInfo,
  headers: Record<string, string | number> = {},
): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value)
  res.setHeader('Cache-Control', 'no-store')
  res.status(status).json(providerErrorBody(provider, status, info))
}
