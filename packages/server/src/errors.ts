/**
 * Error codes raised by the gateway (`gatehouse`) itself; each layer's codes are its package's.
 * The root README's "Errors of the gateway" table documents every one.
 */
export const ServerErrorCodes = {
  /** The configuration (YAML, environment) is invalid: the message names every bad key. */
  GH_SERVER_CONFIG_INVALID: 'GH_SERVER_CONFIG_INVALID',
} as const

export type ServerErrorCode = keyof typeof ServerErrorCodes
