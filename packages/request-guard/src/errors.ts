/**
 * The codes @gatehouse/request-guard raises. Configuration codes are thrown by the factory; the
 * others name why a request was refused and appear in the `security_violation` event's
 * `details.code` (the client sees the provider's own error shape).
 */
export const RequestGuardErrorCodes = {
  /** An option has the wrong type or value. */
  GH_RG_INVALID_OPTIONS: 'GH_RG_INVALID_OPTIONS',
  /** An option name is not known (typo). */
  GH_RG_UNKNOWN_OPTION: 'GH_RG_UNKNOWN_OPTION',
  /** `app.use(requestGuard)` without calling the factory. */
  GH_RG_NOT_CALLED: 'GH_RG_NOT_CALLED',
  /** 413: the body (declared or counted) is larger than `bodyLimit`. */
  GH_RG_BODY_TOO_LARGE: 'GH_RG_BODY_TOO_LARGE',
  /** 415: the Content-Type is missing, not JSON (for a file upload: not multipart/form-data with one boundary), or declares a charset other than UTF-8. */
  GH_RG_UNSUPPORTED_MEDIA_TYPE: 'GH_RG_UNSUPPORTED_MEDIA_TYPE',
  /** 415: the body is compressed or otherwise content-encoded. */
  GH_RG_UNSUPPORTED_ENCODING: 'GH_RG_UNSUPPORTED_ENCODING',
  /** 400: the body is empty, not UTF-8, starts with a byte order mark, or is not valid JSON. */
  GH_RG_MALFORMED_JSON: 'GH_RG_MALFORMED_JSON',
  /** 400: a file upload's body is empty or not framed by the multipart boundary its Content-Type names. */
  GH_RG_MALFORMED_UPLOAD: 'GH_RG_MALFORMED_UPLOAD',
  /** 400: the JSON document is not an object (an array, null, a string, a number). */
  GH_RG_NOT_AN_OBJECT: 'GH_RG_NOT_AN_OBJECT',
  /** 400: objects and arrays are nested deeper than `maxDepth`. */
  GH_RG_TOO_DEEP: 'GH_RG_TOO_DEEP',
  /** 413: one array or object holds more than `maxElements` entries. */
  GH_RG_TOO_MANY_ELEMENTS: 'GH_RG_TOO_MANY_ELEMENTS',
  /** 400: a key such as `__proto__` or `constructor.prototype` (prototype pollution). */
  GH_RG_FORBIDDEN_KEY: 'GH_RG_FORBIDDEN_KEY',
  /** 400: the same key twice in one object (parsers disagree on which one wins). */
  GH_RG_DUPLICATE_KEY: 'GH_RG_DUPLICATE_KEY',
  /** 400: the body does not match the provider's documented request schema. */
  GH_RG_INVALID_BODY: 'GH_RG_INVALID_BODY',
  /** 400: a max-token field is above the configured cap (and `onOverCap` is `reject`). */
  GH_RG_MAX_TOKENS_EXCEEDED: 'GH_RG_MAX_TOKENS_EXCEEDED',
  GH_RG_TOO_MANY_CHOICES: 'GH_RG_TOO_MANY_CHOICES',
  GH_RG_UNMETERED: 'GH_RG_UNMETERED',
  /** 400: the body holds a credential whose action is `block` (also the `details.code` of the mask and log events). */
  GH_RG_SECRET_DETECTED: 'GH_RG_SECRET_DETECTED',
  /** 500: the `secrets.policy` hook threw or returned something other than a policy; nothing is forwarded. */
  GH_RG_SECRET_POLICY: 'GH_RG_SECRET_POLICY',
  /** 400: a GET, HEAD, DELETE or OPTIONS request carries a body. */
  GH_RG_UNEXPECTED_BODY: 'GH_RG_UNEXPECTED_BODY',
  /** 500: an earlier middleware consumed the body in a form the guard cannot check. */
  GH_RG_BODY_UNAVAILABLE: 'GH_RG_BODY_UNAVAILABLE',
  /** 500: an unexpected failure inside the guard (a bug); the request is not forwarded. */
  GH_RG_INTERNAL: 'GH_RG_INTERNAL',
} as const

export type RequestGuardErrorCode = keyof typeof RequestGuardErrorCodes
