import type { ProviderName } from './providers'

/**
 * The provider registry: what Gatehouse knows of each provider's API, in one table. The proxy,
 * request-guard, client-auth, the credential vault and the device fingerprint all read it; no
 * package keeps its own list of paths or headers.
 *
 * Everything that crosses the gateway does so by allowlist: an endpoint not in a provider's table
 * is never forwarded, a request header not listed here never reaches the provider, a response
 * header not listed here never reaches the client.
 */

export type HttpMethod = 'GET' | 'POST' | 'DELETE'

/** One provider endpoint: a method and a path pattern, with what it is. */
export interface EndpointSpec {
  /** Stable id, used in config (`providers.<name>.endpoints`) and key scopes: `openai.chat`. */
  readonly id: string
  readonly method: HttpMethod
  /**
   * The upstream path, `:name` standing for one path segment (never empty, never containing `/`).
   * Inside a segment, `:name:verb` matches Gemini's `models/gemini-2.0-flash:generateContent`.
   */
  readonly path: string
  /** On unless the operator narrows it: the inference endpoints. */
  readonly default: boolean
  /**
   * A model call whose 401 proves the credential is bad: only answers to these may take a
   * credential out of rotation (an admin endpoint the key may not use is no evidence).
   */
  readonly inference: boolean
  /** The body is `multipart/form-data` (a file upload), not JSON. */
  readonly multipart: boolean
  readonly description: string
}

export interface ProviderSpec {
  readonly name: ProviderName
  readonly defaultBaseUrl: string
  /** Request headers the provider's SDKs send that may cross to it (lower case). */
  readonly requestHeaders: readonly string[]
  /** Response headers that may cross back to the client (lower case). */
  readonly responseHeaders: readonly string[]
  /**
   * The provider's account-wide rate-limit header families. They describe the shared upstream
   * account, so every tenant's use: a tenant reading them sees the others' traffic. The proxy
   * relays them only when the operator says so for that provider.
   */
  readonly rateLimitHeaderPrefixes: readonly string[]
  /**
   * Headers that choose the account billed or read (organization, project). They come only from
   * the credential's config; a client's are dropped, and the provider's are never relayed back.
   */
  readonly accountHeaders: readonly string[]
  readonly endpoints: readonly EndpointSpec[]
}

/**
 * Headers a client may use to present a credential (its Gatehouse key, or a provider key it should
 * not be sending): never forwarded, whatever the provider.
 */
export const CLIENT_CREDENTIAL_HEADERS: readonly string[] = Object.freeze([
  'authorization',
  'proxy-authorization',
  'x-api-key',
  'x-goog-api-key',
  'api-key',
  'cookie',
])

/** Request headers any provider may receive from a client (besides the provider's own list). */
export const COMMON_REQUEST_HEADERS: readonly string[] = Object.freeze([
  'content-type',
  'accept',
  'user-agent',
  'idempotency-key',
  'traceparent',
  'tracestate',
])

/** Request header prefixes any provider may receive: the official SDKs' telemetry. */
export const COMMON_REQUEST_HEADER_PREFIXES: readonly string[] = Object.freeze(['x-stainless-'])

/** Response headers any provider may send back to the client. */
export const COMMON_RESPONSE_HEADERS: readonly string[] = Object.freeze([
  'content-type',
  'content-length',
  'content-encoding',
  'cache-control',
  'retry-after',
  'retry-after-ms',
  // Whether the client should retry this answer: the official SDKs obey it before their own rule.
  'x-should-retry',
  'location',
  'x-request-id',
  'request-id',
])

const ep = (
  id: string,
  method: HttpMethod,
  path: string,
  description: string,
  flags: { default?: boolean; inference?: boolean; multipart?: boolean } = {},
): EndpointSpec => Object.freeze({ id, method, path, description, default: flags.default ?? false, inference: flags.inference ?? false, multipart: flags.multipart ?? false })

const on = { default: true, inference: true } as const

const OPENAI: ProviderSpec = {
  name: 'openai',
  defaultBaseUrl: 'https://api.openai.com',
  requestHeaders: ['openai-beta'],
  responseHeaders: ['openai-processing-ms', 'openai-version'],
  rateLimitHeaderPrefixes: ['x-ratelimit-'],
  accountHeaders: ['openai-organization', 'openai-project'],
  endpoints: [
    ep('openai.chat', 'POST', '/v1/chat/completions', 'Chat completions', on),
    ep('openai.completions', 'POST', '/v1/completions', 'Legacy completions', on),
    ep('openai.responses', 'POST', '/v1/responses', 'Create a response', on),
    ep('openai.embeddings', 'POST', '/v1/embeddings', 'Embeddings', on),
    ep('openai.moderations', 'POST', '/v1/moderations', 'Moderations', on),
    ep('openai.models', 'GET', '/v1/models', 'List models', on),
    ep('openai.model', 'GET', '/v1/models/:model', 'Retrieve a model', on),
    ep('openai.images', 'POST', '/v1/images/generations', 'Generate images (billed per image)', { inference: true }),
    ep('openai.audio.speech', 'POST', '/v1/audio/speech', 'Text to speech', { inference: true }),
    ep('openai.chat.list', 'GET', '/v1/chat/completions', "List stored chat completions (every tenant's)"),
    ep('openai.chat.get', 'GET', '/v1/chat/completions/:id', 'Retrieve a stored chat completion'),
    ep('openai.chat.messages', 'GET', '/v1/chat/completions/:id/messages', "A stored chat completion's messages"),
    ep('openai.chat.delete', 'DELETE', '/v1/chat/completions/:id', 'Delete a stored chat completion'),
    ep('openai.responses.get', 'GET', '/v1/responses/:id', 'Retrieve a stored response'),
    ep('openai.responses.input_items', 'GET', '/v1/responses/:id/input_items', "A stored response's input"),
    ep('openai.responses.cancel', 'POST', '/v1/responses/:id/cancel', 'Cancel a background response'),
    ep('openai.responses.delete', 'DELETE', '/v1/responses/:id', 'Delete a stored response'),
    ep('openai.files.list', 'GET', '/v1/files', 'List files'),
    ep('openai.files.create', 'POST', '/v1/files', 'Upload a file', { multipart: true }),
    ep('openai.files.get', 'GET', '/v1/files/:id', 'Retrieve a file'),
    ep('openai.files.content', 'GET', '/v1/files/:id/content', "A file's content"),
    ep('openai.files.delete', 'DELETE', '/v1/files/:id', 'Delete a file'),
    ep('openai.batches.list', 'GET', '/v1/batches', 'List batches'),
    ep('openai.batches.create', 'POST', '/v1/batches', 'Create a batch'),
    ep('openai.batches.get', 'GET', '/v1/batches/:id', 'Retrieve a batch'),
    ep('openai.batches.cancel', 'POST', '/v1/batches/:id/cancel', 'Cancel a batch'),
    ep('openai.fine_tuning.list', 'GET', '/v1/fine_tuning/jobs', 'List fine-tuning jobs'),
    ep('openai.fine_tuning.create', 'POST', '/v1/fine_tuning/jobs', 'Create a fine-tuning job'),
    ep('openai.models.delete', 'DELETE', '/v1/models/:model', 'Delete a fine-tuned model'),
  ],
}

const CLAUDE: ProviderSpec = {
  name: 'claude',
  defaultBaseUrl: 'https://api.anthropic.com',
  requestHeaders: ['anthropic-version', 'anthropic-beta'],
  responseHeaders: [],
  rateLimitHeaderPrefixes: ['anthropic-ratelimit-'],
  accountHeaders: [],
  endpoints: [
    ep('claude.messages', 'POST', '/v1/messages', 'Messages', on),
    ep('claude.count_tokens', 'POST', '/v1/messages/count_tokens', 'Count tokens', on),
    ep('claude.models', 'GET', '/v1/models', 'List models', on),
    ep('claude.model', 'GET', '/v1/models/:model', 'Retrieve a model', on),
    ep('claude.batches.list', 'GET', '/v1/messages/batches', 'List message batches'),
    ep('claude.batches.create', 'POST', '/v1/messages/batches', 'Create a message batch'),
    ep('claude.batches.get', 'GET', '/v1/messages/batches/:id', 'Retrieve a message batch'),
    ep('claude.batches.results', 'GET', '/v1/messages/batches/:id/results', "A message batch's results"),
    ep('claude.batches.cancel', 'POST', '/v1/messages/batches/:id/cancel', 'Cancel a message batch'),
    ep('claude.batches.delete', 'DELETE', '/v1/messages/batches/:id', 'Delete a message batch'),
    ep('claude.files.list', 'GET', '/v1/files', 'List files (beta)'),
    ep('claude.files.create', 'POST', '/v1/files', 'Upload a file (beta)', { multipart: true }),
    ep('claude.files.get', 'GET', '/v1/files/:id', 'Retrieve file metadata (beta)'),
    ep('claude.files.content', 'GET', '/v1/files/:id/content', "A file's content (beta)"),
    ep('claude.files.delete', 'DELETE', '/v1/files/:id', 'Delete a file (beta)'),
  ],
}

const geminiModelCall = (id: string, version: 'v1beta' | 'v1', verb: string, description: string, flags: { default?: boolean; inference?: boolean } = on): EndpointSpec =>
  ep(id, 'POST', `/${version}/models/:model:${verb}`, description, flags)

const GEMINI: ProviderSpec = {
  name: 'gemini',
  defaultBaseUrl: 'https://generativelanguage.googleapis.com',
  requestHeaders: ['x-goog-api-client'],
  responseHeaders: [],
  rateLimitHeaderPrefixes: [],
  accountHeaders: ['x-goog-user-project'],
  endpoints: [
    ...(['v1beta', 'v1'] as const).flatMap((v) => [
      geminiModelCall(`gemini.${v}.generate`, v, 'generateContent', 'Generate content'),
      geminiModelCall(`gemini.${v}.stream`, v, 'streamGenerateContent', 'Stream generated content'),
      geminiModelCall(`gemini.${v}.count_tokens`, v, 'countTokens', 'Count tokens'),
      geminiModelCall(`gemini.${v}.embed`, v, 'embedContent', 'Embed content'),
      geminiModelCall(`gemini.${v}.batch_embed`, v, 'batchEmbedContents', 'Embed several contents'),
      ep(`gemini.${v}.models`, 'GET', `/${v}/models`, 'List models', on),
      ep(`gemini.${v}.model`, 'GET', `/${v}/models/:model`, 'Retrieve a model', on),
    ]),
    ep('gemini.openai.chat', 'POST', '/v1beta/openai/chat/completions', 'OpenAI-compatible chat completions', on),
    ep('gemini.openai.embeddings', 'POST', '/v1beta/openai/embeddings', 'OpenAI-compatible embeddings', on),
    ep('gemini.openai.models', 'GET', '/v1beta/openai/models', 'OpenAI-compatible model list', on),
    geminiModelCall('gemini.batch_generate', 'v1beta', 'batchGenerateContent', 'Batch generation (asynchronous)', { default: false, inference: false }),
    ep('gemini.files.list', 'GET', '/v1beta/files', 'List files'),
    ep('gemini.files.get', 'GET', '/v1beta/files/:id', 'Retrieve a file'),
    ep('gemini.files.delete', 'DELETE', '/v1beta/files/:id', 'Delete a file'),
    ep('gemini.cached_contents.list', 'GET', '/v1beta/cachedContents', 'List cached contents'),
    ep('gemini.tuned_models.list', 'GET', '/v1beta/tunedModels', 'List tuned models'),
  ],
}

/** The registry, by provider. */
export const PROVIDERS: Readonly<Record<ProviderName, ProviderSpec>> = Object.freeze({
  claude: CLAUDE,
  openai: OPENAI,
  gemini: GEMINI,
})

/** Every endpoint id of every provider. */
export const ENDPOINT_IDS: readonly string[] = Object.freeze(Object.values(PROVIDERS).flatMap((p) => p.endpoints.map((e) => e.id)))

/** The ids a provider allows when the operator says nothing. */
export const defaultEndpointIds = (provider: ProviderName): string[] =>
  PROVIDERS[provider].endpoints.filter((e) => e.default).map((e) => e.id)

interface CompiledEndpoint {
  readonly spec: EndpointSpec
  readonly regex: RegExp
  /** The parameter names, in order. */
  readonly params: readonly string[]
}

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** `:name` is one segment of URL-safe characters; a Gemini `:name:verb` keeps its verb literal. */
function compile(spec: EndpointSpec): CompiledEndpoint {
  const params: string[] = []
  const source = spec.path
    .split('/')
    .map((segment) => {
      const m = /^:([a-z]+)(:[A-Za-z]+)?$/.exec(segment)
      if (!m) return escapeRegex(segment)
      params.push(m[1]!)
      // No ':' in the parameter, so `models/x:generateContent` cannot also match `:streamGenerateContent`.
      return m[2] ? `([^/:]+)${escapeRegex(m[2])}` : '([^/]+)'
    })
    .join('/')
  return { spec, regex: new RegExp(`^${source}$`), params }
}

const COMPILED: Readonly<Record<ProviderName, readonly CompiledEndpoint[]>> = Object.freeze({
  claude: CLAUDE.endpoints.map(compile),
  openai: OPENAI.endpoints.map(compile),
  gemini: GEMINI.endpoints.map(compile),
})

/** An endpoint a request matched, with the path parameters (`model` for Gemini's model calls). */
export interface MatchedEndpoint {
  readonly spec: EndpointSpec
  readonly params: Readonly<Record<string, string>>
}

/**
 * Which known endpoint of `provider` a request is for. `path` is the upstream path without the
 * query string. Returns undefined for a method or path the registry does not know: such a request
 * is refused, never forwarded.
 */
export function matchEndpoint(provider: ProviderName, method: string, path: string): MatchedEndpoint | undefined {
  for (const c of COMPILED[provider]) {
    if (c.spec.method !== method) continue
    const m = c.regex.exec(path)
    if (!m) continue
    const params: Record<string, string> = {}
    for (let i = 0; i < c.params.length; i++) params[c.params[i]!] = m[i + 1]!
    return { spec: c.spec, params }
  }
  return undefined
}

/**
 * Whether a string can be a provider object's id as the providers write them (OpenAI `resp_…`,
 * `file-…`, `vs_…`; Anthropic `file_…`; Gemini `cachedContents/…` and file URIs). A request naming
 * anything else names nobody's object; a key scope or a config listing one is refused.
 */
export const isProviderObjectId = (id: string): boolean => PROVIDER_OBJECT_ID.test(id)
/** What such an id is made of, for messages that refuse one. */
export const PROVIDER_OBJECT_ID_FORMAT = 'letters, digits, . _ - : /, up to 256'
/** The same, as a JSON schema pattern. */
export const PROVIDER_OBJECT_ID_PATTERN = '^[A-Za-z0-9_./:-]{1,256}$'
const PROVIDER_OBJECT_ID = new RegExp(PROVIDER_OBJECT_ID_PATTERN)

export { ANTHROPIC_OAUTH_BETA, isInvalidCredentialAnswer, upstreamCredentialHeaders } from './provider-credentials'
