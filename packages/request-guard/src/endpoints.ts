import { detectProvider, matchEndpoint, resolveProviderRoute, type ProviderName } from '@gatehouse/core'
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
  | 'gemini.batch'
  | 'generic'

export interface Endpoint {
  kind: EndpointKind
  /** Whose caps apply (`providers.<name>`). */
  provider: ProviderName
  /** Whose error shape the client expects. */
  dialect: ProviderName
  /** The model named in the path (Gemini), when there is one. */
  pathModel?: string
  /** A file upload: its body is `multipart/form-data`, not JSON. */
  multipart?: true
}

/**
 * The body schema of each endpoint of the provider registry (core) that has one. Which path is
 * which endpoint is the registry's to say, the same table the router and the proxy read.
 */
const KIND_BY_ENDPOINT: Readonly<Record<string, EndpointKind>> = {
  'openai.chat': 'openai.chat',
  'openai.completions': 'openai.completions',
  'openai.embeddings': 'openai.embeddings',
  'openai.responses': 'openai.responses',
  'claude.messages': 'claude.messages',
  'claude.count_tokens': 'claude.count_tokens',
  'claude.batches.create': 'claude.batches',
  'gemini.v1beta.generate': 'gemini.generate',
  'gemini.v1beta.stream': 'gemini.generate',
  'gemini.v1.generate': 'gemini.generate',
  'gemini.v1.stream': 'gemini.generate',
  'gemini.batch_generate': 'gemini.batch',
  // Gemini's OpenAI-compatible endpoints take OpenAI bodies, and OpenAI SDKs read the errors.
  'gemini.openai.chat': 'openai.chat',
  'gemini.openai.embeddings': 'openai.embeddings',
}

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
 * Which provider and which documented body a request names. `pathname` is the path the client
 * sent, without the query string; the method defaults to POST (the methods that carry bodies).
 */
export function resolveEndpoint(pathname: string, headers: IncomingHttpHeaders, method = 'POST'): Endpoint {
  const path = normalizePath(pathname)
  const route = resolveProviderRoute(path, headers)
  if (!route) {
    const provider = detectProvider({ path, headers })
    return { kind: 'generic', provider, dialect: provider }
  }
  const matched = matchEndpoint(route.provider, method === 'PUT' || method === 'PATCH' ? 'POST' : method, normalizePath(route.upstreamPath))
  const id = matched?.spec.id
  const kind = (id !== undefined ? KIND_BY_ENDPOINT[id] : undefined) ?? 'generic'
  const dialect = id?.startsWith('gemini.openai.') ? 'openai' : route.provider
  const model = matched?.params.model
  return {
    kind,
    provider: route.provider,
    dialect,
    ...((kind === 'gemini.generate' || kind === 'gemini.batch') && model !== undefined ? { pathModel: decodeModel(model) } : {}),
    ...(matched?.spec.multipart === true ? { multipart: true as const } : {}),
  }
}
