import type { Request, Response, Router } from 'express'
import type { Logger, SecurityEventHandler } from '@gatehouse/core'
import type { ManagedKeyStore } from '@gatehouse/client-auth'
import type { RuntimeControl } from '../cluster/shared-runtime'
import type { GatewayRuntime } from '../runtime'

/** What the management API's routes are given: events, errors, the caller, the audit log's state. */
export interface ManagementContext {
  /** Emit a config_change event for a change made through the API. */
  changed(req: Request, res: Response, action: string, details?: Record<string, unknown>): void
  /** Answer an error in the management API's shape. */
  fail(res: Response, status: number, message: string): void
  /** Who made the change, for events raised by the component that carries it out. */
  who(req: Request, res: Response): { ip: string; user_id: string; request_id?: string }
  /** True once everything emitted so far is on disk in the audit log (true without an audit log). */
  auditWritten(): Promise<boolean>
}

export interface ManagementOptions {
  secretKey: string
  allowRemote: boolean
  runtime: GatewayRuntime
  /** How maintenance and the kill switch are changed: here, or in the shared store for every replica. */
  control: RuntimeControl
  keyStore: ManagedKeyStore
  emit: SecurityEventHandler
  logger: Logger
  /** Failed attempts from one address before it is banned. @default 5 */
  maxFailures?: number
  /** Window in which failures are counted, and the ban's length. @default 10 min, 30 min */
  failureWindowMs?: number
  banMs?: number
  /** Wrong keys from all addresses together, within the window, before every wrong key is banned. @default 100 */
  globalFailureBudget?: number
  /** Extra routes (credentials, denylist) mounted on the same authenticated router. */
  extend?: (router: Router, ctx: ManagementContext) => void
  /**
   * When false (the audit log cannot be written), changes that relax or add are refused with 503,
   * and so is an export with secrets; denylist additions, revocations, maintenance on and a provider
   * switched off go ahead, logged at error and counted (`unaudited_change`).
   */
  canAudit?: () => boolean
  /** Resolves true once what was emitted so far is on disk in the audit log (an export with secrets waits for it). */
  auditWritten?: () => Promise<boolean>
}
