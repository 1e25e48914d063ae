import type { Response } from 'express'
import type { ProviderRoute } from './providers'

/** Limits of one client key, overall or for one provider: each a positive whole number. */
export interface KeyLimits {
  requests_per_minute?: number
  tokens_per_minute?: number
  monthly_tokens?: number
  concurrency?: number
}

/** A key's limits: overall, and per provider (both apply). */
export interface KeyLimitScope extends KeyLimits {
  providers?: Partial<Record<string, KeyLimits>>
}

/** The names of `KeyLimits`, in the order they are shown. */
export const KEY_LIMIT_NAMES = ['requests_per_minute', 'tokens_per_minute', 'monthly_tokens', 'concurrency'] as const

/**
 * Per-request data that Gatehouse middlewares share, kept in `res.locals.gatehouse`.
 * Packages add their own fields through declaration merging on this interface.
 */
export interface GatehouseLocals {
  /** The request id (set by the server's first layer, or by whoever runs first). */
  requestId?: string
  /**
   * The id the client sent for its own correlation (a plain token), recorded beside the request id
   * and never in its place: a client must not choose the id other records are found by.
   */
  clientRequestId?: string
  /** The public id of the authenticated client key (`key_…`). */
  clientKeyId?: string
  /**
   * The endpoint ids (provider registry) the authenticated key may call, when its scope names
   * them; undefined means the provider's allowed set.
   */
  clientKeyEndpoints?: readonly string[]
  /** The authenticated key's own limits, when it has any (client-auth's `KeyLimitScope`). */
  clientKeyLimits?: Readonly<KeyLimitScope>
  /** The models (names, or patterns with `*`) the authenticated key may use, when its scope names them. */
  clientKeyModels?: readonly string[]
  /**
   * Provider objects (ids) the authenticated key may refer to besides those it made through the
   * gateway, when its scope names them (an operator's grant: a vector store made outside it).
   */
  clientKeyObjects?: readonly string[]
  /** The provider route resolved for this request (once; later layers read it). */
  route?: ProviderRoute
  /** The registry id of the endpoint this request is for, once admitted (`openai.chat`). */
  endpoint?: string
  /** Whether this endpoint is a model call (only its invalid-key answer may take a credential out of rotation). */
  endpointInference?: boolean
  /** The provider this request is for, once known. */
  provider?: string
  /**
   * Token usage the upstream reported, set only once the whole answer has been read (a stream cut
   * short leaves it unset: its partial figures would undercount).
   */
  usage?: { inputTokens?: number; outputTokens?: number }
  /**
   * The most this request can cost, from its validated body (request-guard): the prompt's size in
   * tokens and the effective output bound (`max_tokens` × `n`, summed over nested batch requests).
   * Limits reserve this, and charge it when the upstream used tokens but reported none.
   */
  tokenEstimate?: { promptTokens: number; outputTokens: number }
  /**
   * Set by request-guard on an OpenAI batch input file it read line by line and bounded: the
   * models its lines name (for the key's models scope) and each line's endpoint id and parsed body
   * (for the provider objects it refers to). The proxy records the file it makes as a checked batch
   * input; a batch may be created only on such a file, once.
   */
  batchInput?: { models: readonly string[]; requests: readonly { endpoint: string; body: Record<string, unknown> }[] }
  /**
   * Set by the proxy: false while the request has not left the gateway, true once its head was
   * written to a connected upstream socket (from then on the provider may spend tokens).
   * Undefined when no Gatehouse proxy is in the path.
   */
  upstreamReached?: boolean
  /** The status the upstream answered with, once its response head arrived. */
  upstreamStatus?: number
}

/** The request's shared Gatehouse state, created on first use. */
export function gatehouseLocals(res: Response): GatehouseLocals {
  const locals = res.locals as { gatehouse?: GatehouseLocals }
  if (!locals.gatehouse) locals.gatehouse = {}
  return locals.gatehouse
}

/** What a finished request costs in tokens, and how that figure was found. */
export interface TokenCharge {
  tokens: number
  /**
   * `reported`: the provider's own usage. `estimated`: the upstream may have used tokens but did
   * not say how many, so the pessimistic bound (prompt estimate + output bound) is charged.
   * `none`: the upstream never received the request, or refused it (providers do not bill errors).
   * `unknown`: no estimate is known (no request-guard in the path); the caller keeps what it reserved.
   */
  source: 'reported' | 'estimated' | 'none' | 'unknown'
  inputTokens?: number
  outputTokens?: number
}

const tokenCount = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.ceil(v) : undefined

/**
 * The tokens a finished (or abandoned) request costs, the one figure the limits settle on and the
 * audit line, the metrics and the request store record:
 * 1. usage the provider reported for the whole answer;
 * 2. nothing when the upstream answered an error status without usage, or never got the request;
 * 3. the pessimistic bound when the upstream got the request and no usage came back (a stream cut
 *    short, a body too odd to read, an upstream that timed out);
 * 4. without a Gatehouse proxy in the path: nothing for an error status, the bound otherwise.
 * Call it when the response is done (`finish` or `close`).
 */
export function tokenCharge(res: Response): TokenCharge {
  const locals = gatehouseLocals(res)
  const input = tokenCount(locals.usage?.inputTokens)
  const output = tokenCount(locals.usage?.outputTokens)
  if (input !== undefined || output !== undefined) {
    return { tokens: (input ?? 0) + (output ?? 0), source: 'reported', ...(input !== undefined ? { inputTokens: input } : {}), ...(output !== undefined ? { outputTokens: output } : {}) }
  }
  const refused =
    locals.upstreamReached === false ||
    (locals.upstreamStatus !== undefined ? locals.upstreamStatus >= 400 : locals.upstreamReached === undefined && res.statusCode >= 400)
  if (refused) return { tokens: 0, source: 'none' }
  const estimate = locals.tokenEstimate
  if (!estimate) return { tokens: 0, source: 'unknown' }
  return {
    tokens: estimate.promptTokens + estimate.outputTokens,
    source: 'estimated',
    inputTokens: estimate.promptTokens,
    outputTokens: estimate.outputTokens,
  }
}
