import type { ProviderName } from '@gatehouse/core'

/** State an operator can change at run time (management API). */
export interface GatewayRuntime {
  maintenance: { enabled: boolean; message: string }
  /** Providers switched off, with the message to answer. */
  disabledProviders: Map<ProviderName, string>
  shuttingDown: boolean
}
