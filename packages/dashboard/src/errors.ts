/** The codes @gatehouse/dashboard raises or reports; each is documented in the README's Errors table. */
export const DashboardErrorCodes = {
  /** An option has the wrong type or value. */
  GH_DASHBOARD_INVALID_OPTIONS: 'GH_DASHBOARD_INVALID_OPTIONS',
  /** An option name is not known (a typo). */
  GH_DASHBOARD_UNKNOWN_OPTION: 'GH_DASHBOARD_UNKNOWN_OPTION',
  /** The factory was passed to app.use() without being called. */
  GH_DASHBOARD_NOT_CALLED: 'GH_DASHBOARD_NOT_CALLED',
  /** `secretKey` is missing or shorter than 32 characters. */
  GH_DASHBOARD_WEAK_KEY: 'GH_DASHBOARD_WEAK_KEY',
  /** Logged: a data provider threw or did not answer in time. */
  GH_DASHBOARD_DATA_FAILED: 'GH_DASHBOARD_DATA_FAILED',
} as const

export type DashboardErrorCode = keyof typeof DashboardErrorCodes
