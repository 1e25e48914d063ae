export { DASHBOARD_CSP, dashboardRouter } from './router'
export { createEventBuffer, type EventBuffer, type EventBufferOptions } from './event-buffer'
export {
  dashboardOptionsSchema,
  resolveDashboardConfig,
  type DashboardConfig,
  type DashboardData,
  type DashboardDenylistEntry,
  type DashboardFinding,
  type DashboardLimit,
  type DashboardOptions,
  type DashboardRefusals,
} from './options'
export { DashboardErrorCodes, type DashboardErrorCode } from './errors'
