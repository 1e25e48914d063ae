import type http from 'node:http'
import type https from 'node:https'
import type { Express, Router } from 'express'
import type { Logger, Masker, ProviderName, SecurityEventHandler } from '@gatehouse/core'
import type { GatewayRuntime } from '../runtime'
import type { ManagedKeyStore } from '@gatehouse/client-auth'
import type { IpFilterMiddleware } from '@gatehouse/ip-filter'
import type { CredentialVault } from '@gatehouse/credential-vault'
import type { AuditLogger } from '@gatehouse/audit-log'
import type { GatehouseMetrics } from '@gatehouse/metrics'
import type { StorageSink } from '@gatehouse/storage'
import type { GatehouseConfig } from '../config/types'
import type { ManagementContext } from '../management/context'
import type { RuntimeControl } from '../cluster/shared-runtime'

export type { GatewayRuntime } from '../runtime'

export interface GatewayOptions {
  logger: Logger
  /** Event sinks besides the audit log, metrics and alerts; each gets every event. */
  eventSinks?: SecurityEventHandler[]
  /** Directory that relative paths in the config are resolved against. @default process.cwd() */
  cwd?: string
  /** Extra management routes (mounted behind the management key). */
  managementExtensions?: (router: Router, ctx: ManagementContext) => void
}

export interface Gateway {
  app: Express
  server: http.Server | https.Server
  runtime: GatewayRuntime
  config: GatehouseConfig
  masker: Masker
  keyStore: ManagedKeyStore
  /** How maintenance and the kill switch change: in this process, or for every replica. */
  control: RuntimeControl
  vault: CredentialVault
  ipFilter: IpFilterMiddleware
  audit: AuditLogger | undefined
  metrics: GatehouseMetrics | undefined
  storage: StorageSink | undefined
  /** Emit an event to every sink. */
  emit: SecurityEventHandler
  /** The metrics listener's URL once listening (undefined when metrics are off). */
  metricsUrl(): string | undefined
  /** The providers served with no credential at all (not ready; their requests get 403). */
  providersWithoutCredential(): ProviderName[]
  listen(): Promise<{ url: string; port: number }>
  /** Stop accepting, let in-flight requests finish within `graceMs`, then end the rest. */
  close(graceMs?: number): Promise<void>
}
