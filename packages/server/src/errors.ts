/**
 * Error codes raised by the gateway (`gatehouse`) itself; each layer's codes are its package's.
 * The root README's "Errors of the gateway" table documents every one.
 */
export const ServerErrorCodes = {
  /** The configuration (YAML, environment) is invalid: the message names every bad key. */
  GH_SERVER_CONFIG_INVALID: 'GH_SERVER_CONFIG_INVALID',
  /** An option of the application logger (createAppLogger) has a bad type or value. */
  GH_SERVER_INVALID_OPTIONS: 'GH_SERVER_INVALID_OPTIONS',
  /** An option name of the application logger is not known. */
  GH_SERVER_UNKNOWN_OPTION: 'GH_SERVER_UNKNOWN_OPTION',
  /** A client connection was closed on arrival: over server.security.connections (per address or in all). */
  GH_SERVER_CONNECTION_LIMIT: 'GH_SERVER_CONNECTION_LIMIT',
} as const

export type ServerErrorCode = keyof typeof ServerErrorCodes
