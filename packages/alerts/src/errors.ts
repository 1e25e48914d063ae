/** The codes @gatehouse/alerts raises; each is documented in the README's Errors table. */
export const AlertsErrorCodes = {
  /** An option has the wrong type or value. */
  GH_ALERTS_INVALID_OPTIONS: 'GH_ALERTS_INVALID_OPTIONS',
  /** An option name is not known (a typo). */
  GH_ALERTS_UNKNOWN_OPTION: 'GH_ALERTS_UNKNOWN_OPTION',
  /** The factory was passed to app.use() without being called. */
  GH_ALERTS_NOT_CALLED: 'GH_ALERTS_NOT_CALLED',
  /** An alert rule is wrong, or its action has nothing to act with; the message names the rule. */
  GH_ALERTS_INVALID_RULE: 'GH_ALERTS_INVALID_RULE',
} as const

export type AlertsErrorCode = keyof typeof AlertsErrorCodes
