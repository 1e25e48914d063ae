/** The codes @gatehouse/device-fingerprint raises; each is documented in the README's Errors table. */
export const DeviceFingerprintErrorCodes = {
  /** An option has the wrong type or value. */
  GH_DFP_INVALID_OPTIONS: 'GH_DFP_INVALID_OPTIONS',
  /** An option name is not known (a typo). */
  GH_DFP_UNKNOWN_OPTION: 'GH_DFP_UNKNOWN_OPTION',
  /** The factory was passed to app.use() without being called. */
  GH_DFP_NOT_CALLED: 'GH_DFP_NOT_CALLED',
  /** The fingerprint file or its directory is a symlink, not a regular file/directory, or another user's. */
  GH_DFP_INSECURE_FILE: 'GH_DFP_INSECURE_FILE',
  /** The persisted fingerprint file is not valid. */
  GH_DFP_INVALID_FILE: 'GH_DFP_INVALID_FILE',
  /** The fingerprint file could not be written. */
  GH_DFP_WRITE_FAILED: 'GH_DFP_WRITE_FAILED',
} as const

export type DeviceFingerprintErrorCode = keyof typeof DeviceFingerprintErrorCodes
