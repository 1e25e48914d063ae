/** Error codes raised by @gatehouse/metrics. */
export const MetricsErrorCodes = {
  GH_METRICS_INVALID_OPTIONS: 'GH_METRICS_INVALID_OPTIONS',
  GH_METRICS_UNKNOWN_OPTION: 'GH_METRICS_UNKNOWN_OPTION',
  GH_METRICS_NOT_CALLED: 'GH_METRICS_NOT_CALLED',
  GH_METRICS_LISTEN_FAILED: 'GH_METRICS_LISTEN_FAILED',
} as const

export type MetricsErrorCode = keyof typeof MetricsErrorCodes
