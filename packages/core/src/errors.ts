/** Every Gatehouse error code starts with `GH_`; the rest names the package and the reason. */
export type GatehouseErrorCode = `GH_${string}`

/** An error that carries a stable, documented code and the HTTP status a middleware answers with. */
export class GatehouseError extends Error {
  override name = 'GatehouseError'
  constructor(
    readonly code: GatehouseErrorCode,
    message: string,
    readonly statusCode = 500,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

/** Thrown at construction time when options or config are invalid. */
export class GatehouseConfigError extends GatehouseError {
  override name = 'GatehouseConfigError'
  constructor(code: GatehouseErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, 500, options)
  }
}

/** Check `.code`, not `instanceof`: two copies of core may be installed side by side. */
export const isGatehouseError = (e: unknown): e is GatehouseError =>
  e instanceof Error &&
  typeof (e as { code?: unknown }).code === 'string' &&
  (e as unknown as { code: string }).code.startsWith('GH_')

/** The codes core itself raises. */
export const CoreErrorCodes = {
  GH_CORE_INVALID_OPTIONS: 'GH_CORE_INVALID_OPTIONS',
  GH_CORE_UNKNOWN_OPTION: 'GH_CORE_UNKNOWN_OPTION',
  GH_CORE_NOT_CALLED: 'GH_CORE_NOT_CALLED',
  GH_CORE_INVALID_DURATION: 'GH_CORE_INVALID_DURATION',
  GH_CORE_INVALID_SIZE: 'GH_CORE_INVALID_SIZE',
  /** A change to state replicated through Redis could not be made: Redis is unreachable (503). */
  GH_CORE_SHARED_STATE_UNAVAILABLE: 'GH_CORE_SHARED_STATE_UNAVAILABLE',
} as const
