/** Error codes raised by @gatehouse/proxy. Once published, a code keeps its meaning. */
export const ProxyErrorCodes = {
  /** An option is missing, of the wrong type or out of range (construction). */
  GH_PROXY_INVALID_OPTIONS: 'GH_PROXY_INVALID_OPTIONS',
  /** An option name the package does not know (construction). */
  GH_PROXY_UNKNOWN_OPTION: 'GH_PROXY_UNKNOWN_OPTION',
  /** `app.use(gatehouseProxy)` without calling it (construction). */
  GH_PROXY_NOT_CALLED: 'GH_PROXY_NOT_CALLED',
  /** An endpoint id that is not in the provider registry, or not the provider's (construction). */
  GH_PROXY_UNKNOWN_ENDPOINT: 'GH_PROXY_UNKNOWN_ENDPOINT',
  /** A request for an endpoint the provider or the client key does not allow (403, never forwarded). */
  GH_PROXY_ENDPOINT_DENIED: 'GH_PROXY_ENDPOINT_DENIED',
  /** A request referring to a provider object its client key did not make (another's, unknown, a conversation): 404, never forwarded. */
  GH_PROXY_OBJECT_DENIED: 'GH_PROXY_OBJECT_DENIED',
  /** A batch on a file that was not uploaded as a checked batch input by its key, or that already ran a batch (400, never forwarded). */
  GH_PROXY_BATCH_INPUT_DENIED: 'GH_PROXY_BATCH_INPUT_DENIED',
  /** The object owners (memory or Redis) could not be read: the request is not sent (503). */
  GH_PROXY_OWNERS_UNAVAILABLE: 'GH_PROXY_OWNERS_UNAVAILABLE',
  /** No upstream credential for the request: it is not sent (503). */
  GH_PROXY_NO_CREDENTIAL: 'GH_PROXY_NO_CREDENTIAL',
  /** The upstream could not be reached, hung up, or the request could not be prepared (502). */
  GH_PROXY_UPSTREAM_FAILED: 'GH_PROXY_UPSTREAM_FAILED',
  /** The upstream did not connect or answer within its timeout (504). */
  GH_PROXY_UPSTREAM_TIMEOUT: 'GH_PROXY_UPSTREAM_TIMEOUT',
  /** A stream sent nothing for the idle timeout and was cut. */
  GH_PROXY_UPSTREAM_IDLE: 'GH_PROXY_UPSTREAM_IDLE',
  /** (log cause) The upstream did not accept the connection within `timeouts.connect`. */
  GH_PROXY_CONNECT_TIMEOUT: 'GH_PROXY_CONNECT_TIMEOUT',
  /** (log cause) The upstream sent no response head within `timeouts.firstByte`. */
  GH_PROXY_FIRST_BYTE_TIMEOUT: 'GH_PROXY_FIRST_BYTE_TIMEOUT',
  /** (log cause) Relaying an upstream answer to the client failed. */
  GH_PROXY_RELAY_FAILED: 'GH_PROXY_RELAY_FAILED',
  /** (log cause) The upstream request was ended before the proxy prepared it: it is never sent. */
  GH_PROXY_REQUEST_ENDED: 'GH_PROXY_REQUEST_ENDED',
} as const

export type ProxyErrorCode = keyof typeof ProxyErrorCodes
