import type { ProviderName } from './providers'

// How a provider credential travels upstream, and how a provider says it is bad: the part of the
// provider registry (registry.ts) about credentials rather than endpoints.

/** The beta flag Anthropic requires with an OAuth access token. */
export const ANTHROPIC_OAUTH_BETA = 'oauth-2025-04-20'

/**
 * The headers that carry a provider credential upstream (SPEC §3): `x-api-key` for an Anthropic
 * API key, `Authorization: Bearer` + the OAuth beta flag for an Anthropic OAuth token,
 * `Authorization: Bearer` for OpenAI and Gemini OAuth, `x-goog-api-key` for a Gemini API key.
 */
export function upstreamCredentialHeaders(provider: ProviderName, type: 'api_key' | 'oauth', secret: string): Record<string, string> {
  switch (provider) {
    case 'claude':
      return type === 'oauth' ? { authorization: `Bearer ${secret}`, 'anthropic-beta': ANTHROPIC_OAUTH_BETA } : { 'x-api-key': secret }
    case 'openai':
      return { authorization: `Bearer ${secret}` }
    case 'gemini':
      return type === 'oauth' ? { authorization: `Bearer ${secret}` } : { 'x-goog-api-key': secret }
  }
}

const field = (v: unknown, k: string): unknown => (v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined)

/**
 * True when an upstream answer proves the credential itself is bad: the provider's own
 * invalid-key answer (OpenAI 401 `invalid_api_key`, Anthropic 401 `authentication_error`, Gemini
 * 400 `API_KEY_INVALID` or 401 `UNAUTHENTICATED`). Any other status or shape (403, a 401 without
 * the provider's marker, an HTML page from a middlebox) is no proof. `body` is the parsed JSON.
 */
export function isInvalidCredentialAnswer(provider: ProviderName, status: number, body: unknown): boolean {
  const error = field(body, 'error')
  switch (provider) {
    case 'openai':
      return status === 401 && field(error, 'code') === 'invalid_api_key'
    case 'claude':
      return status === 401 && field(body, 'type') === 'error' && field(error, 'type') === 'authentication_error'
    case 'gemini': {
      if (status === 401) return field(error, 'status') === 'UNAUTHENTICATED'
      if (status !== 400) return false
      const details = field(error, 'details')
      return Array.isArray(details) && details.some((d) => field(d, 'reason') === 'API_KEY_INVALID')
    }
  }
}
