import { detectProvider, resolveProviderRoute, type ProviderName } from '@gatehouse/core'
import type { IncomingHttpHeaders } from 'node:http'

/** The request bodies the guard knows the schema of; `generic` gets every check but the schema. */
export type EndpointKind =
  | 'openai.chat'
  | 'openai.completions'
  | 'openai.embeddings'
  | 'openai.responses'
  | 'claude.messages'
  | 'claude.count_tokens'
  | 'claude.batches'
  | 'gemini.generate'
  | 'generic'

export interface Endpoint {
  kind: EndpointKind
  /** Whose caps apply (`providers.<name>`). */
  provider: ProviderName
  /** Whose error shape the client expects. */
  dialect: ProviderName
  /** The model named in the path (Gemini), when there is one. */
  pathModel?: string
}

const OPENAI_KINDS: Record<string, EndpointKind> = {
  '/v1/chat/completions': 'openai.chat',
  '/v1/completions': 'openai.completions',
  '/v1/embeddings': 'openai.embeddings',
  '/v1/responses': 'openai.responses',
}

const CLAUDE_KINDS: Record<string, EndpointKind> = {
  '/v1/messages': 'claude.messages',
  '/v1/messages/count_tokens': 'claude.count_tokens',
  '/v1/messages/batches': 'claude.batches',
}

const GEMINI_GENERATE = /^\/v1(?:beta|alpha)?\/models\/([^/:]+):(?:generateContent|streamGenerateContent)$/
const GEMINI_OPENAI = /^\/v1(?:beta)?\/openai(\/.*)$/

/** `//v1//chat/completions/` → `/v1/chat/completions`, so a stray slash does not skip the schema. */
function normalizePath(path: string): string {
  if (!path.includes('//') && (path.length === 1 || !path.endsWith('/'))) return path
  const collapsed = path.replace(/\/{2,}/g, '/')
  return collapsed.length > 1 ? collapsed.replace(/\/+$/, '') : collapsed
}

function decodeModel(raw: string): string {
  try {
    return decodeURIComponent(raw)
  } catch {
    return raw
  }
}

/**
 * Which provider and which documented body a request path names. `pathname` is the path the client
 * sent, without the query string.
 */
export function resolveEndpoint(pathname: string, headers: IncomingHttpHeaders): Endpoint {
  const path = normalizePath(pathname)
  const route = resolveProviderRoute(path)
  if (!route) {
    const provider = detectProvider({ path, headers })
    return { kind: 'generic', provider, dialect: provider }
  }
  const upstream = normalizePath(route.upstreamPath)
  switch (route.provider) {
    case 'openai':
      return { kind: OPENAI_KINDS[upstream] ?? 'generic', provider: 'openai', dialect: 'openai' }
    case 'claude':
      return { kind: CLAUDE_KINDS[upstream] ?? 'generic', provider: 'claude', dialect: 'claude' }
    case 'gemini': {
      const generate = GEMINI_GENERATE.exec(upstream)
      if (generate)
        return {
          kind: 'gemini.generate',
          provider: 'gemini',
          dialect: 'gemini',
          pathModel: decodeModel(generate[1]!),
        }
      // Gemini's OpenAI-compatible endpoints take OpenAI bodies and OpenAI SDKs read the errors.
      const compat = GEMINI_OPENAI.exec(upstream)
      if (compat) {
        const kind = OPENAI_KINDS[`/v1${compat[1]!}`] ?? 'generic'
        return { kind, provider: 'gemini', dialect: 'openai' }
      }
      return { kind: 'generic', provider: 'gemini', dialect: 'gemini' }
    }
  }
}
