/**
 * Error codes raised by @gatehouse/security-check. A finding (a leaked key, a file with mode 0644,
 * an expiring certificate) is not an error: it is a result. These codes are for calls that could
 * not run as asked; the CLI maps every one of them to exit code 2, except GH_SC_HOOK_EXISTS (1).
 */
export const SecurityCheckErrorCodes = {
  GH_SC_INVALID_OPTIONS: 'GH_SC_INVALID_OPTIONS',
  GH_SC_UNKNOWN_OPTION: 'GH_SC_UNKNOWN_OPTION',
  /** Core's option resolver raises it for a function passed uncalled; it never leaves (GH_SC_INVALID_OPTIONS does). */
  GH_SC_NOT_CALLED: 'GH_SC_NOT_CALLED',
  GH_SC_USAGE: 'GH_SC_USAGE',
  GH_SC_PATH_NOT_FOUND: 'GH_SC_PATH_NOT_FOUND',
  GH_SC_NOT_A_GIT_REPO: 'GH_SC_NOT_A_GIT_REPO',
  GH_SC_GIT_FAILED: 'GH_SC_GIT_FAILED',
  GH_SC_BASELINE_INVALID: 'GH_SC_BASELINE_INVALID',
  GH_SC_HONEYTOKENS_INVALID: 'GH_SC_HONEYTOKENS_INVALID',
  GH_SC_HOOK_EXISTS: 'GH_SC_HOOK_EXISTS',
} as const

export type SecurityCheckErrorCode = keyof typeof SecurityCheckErrorCodes

/** The package name every message starts with. */
export const PKG = '@gatehouse/security-check'
