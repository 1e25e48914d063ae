import type { Response } from 'express'
import type { ProviderRoute } from './providers'

/**
 * Per-request data that Gatehouse middlewares share, kept in `res.locals.gatehouse`.
 * Packages add their own fields through declaration merging on this interface.
 */
export interface GatehouseLocals {
  /** The request id (set by the server's first layer, or by whoever runs first). */
  requestId?: string
  /** The public id of the authenticated client key (`key_…`). */
  clientKeyId?: string
  /**
   * The endpoint ids (provider registry) the authenticated key may call, when its scope names
   * them; undefined means the provider's allowed set.
   */
  clientKeyEndpoints?: readonly string[]
  /** The provider route resolved for this request (once; later layers read it). */
  route?: ProviderRoute
  /** The registry id of the endpoint this request is for, once admitted (`openai.chat`). */
  endpoint?: string
  /** Whether this endpoint is a model call (only its invalid-key answer may take a credential out of rotation). */
  endpointInference?: boolean
  /** The provider this request is for, once known. */
  provider?: string
  /** Token usage reported by the upstream, once the response has been read. */
  usage?: { inputTokens?: number; outputTokens?: number }
}

/** The request's shared Gatehouse state, created on first use. */
export function gatehouseLocals(res: Response): GatehouseLocals {
  const locals = res.locals as { gatehouse?: GatehouseLocals }
  if (!locals.gatehouse) locals.gatehouse = {}
  return locals.gatehouse
}
