import type { GatehouseConfig } from './config/types'

/**
 * Config keys this build accepts but does not enforce yet, with the test that says whether a config
 * turns them on. `gatehouse config check` lists them and the server warns at start: never silently
 * ignored. Each entry goes away when its layer is wired.
 */
export const NOT_YET_ENFORCED: ReadonlyArray<{ path: string; active: (c: GatehouseConfig) => boolean }> = []

/** Keys that would leave the operator less safe than they believe if ignored: refuse to start. */
export const MUST_ENFORCE: ReadonlyArray<{ path: string; active: (c: GatehouseConfig) => boolean; why: string }> = []

export function notEnforced(c: GatehouseConfig): string[] {
  return NOT_YET_ENFORCED.filter((e) => e.active(c)).map((e) => e.path)
}

export function mustEnforceErrors(c: GatehouseConfig): string[] {
  return MUST_ENFORCE.filter((e) => e.active(c)).map((e) => `${e.path}: ${e.why}`)
}
