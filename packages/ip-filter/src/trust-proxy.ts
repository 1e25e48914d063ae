import { GatehouseConfigError } from '@gatehouse/core'
import { isCidrError, parseCidr } from './address'

const PKG = '@gatehouse/ip-filter'

/** A `trust proxy` value Gatehouse accepts: off, a hop count, or the proxies' addresses and CIDRs. */
export type TrustProxyValue = false | number | string[]

/** The named ranges Express's `trust proxy` (proxy-addr) understands. */
const NAMED_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal'])

const MUST_BE = 'it must be false, a hop count (the number of proxies in front of the gateway, e.g. 1) or a list of the proxies\' addresses or CIDRs'

function refuse(name: string, why: string): never {
  throw new GatehouseConfigError('GH_IPF_TRUST_PROXY', `${PKG}: ${name} ${why}; ${MUST_BE}`)
}

/**
 * Validate a `trust proxy` setting (`server.trust_proxy`) and return the value to give
 * `app.set('trust proxy', value)`. `true` is refused: it trusts every hop, so any client could
 * choose its own address with `X-Forwarded-For` and walk past the IP filter and per-IP limits.
 * A list entry that covers every address (0.0.0.0/0, ::/0) is refused for the same reason.
 *
 * Accepts false/null/undefined (off), a non-negative integer hop count, an array of addresses,
 * CIDRs or Express's named ranges (`loopback`, `linklocal`, `uniquelocal`), or the same as one
 * comma-separated string. Throws GatehouseConfigError `GH_IPF_TRUST_PROXY`.
 *
 * @param name how to name the setting in the error (e.g. `server.trust_proxy`)
 */
export function validateTrustProxy(value: unknown, name = 'trustProxy'): TrustProxyValue {
  if (value === undefined || value === null || value === false) return false
  if (value === true || value === 'true') {
    refuse(name, 'is true, which trusts every hop, so any client could forge X-Forwarded-For and pick its own address')
  }
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0 || value > 64) refuse(name, `is not a valid hop count (got ${JSON.stringify(value)})`)
    return value
  }
  let list: unknown[]
  if (typeof value === 'string') list = value.split(',').map((s) => s.trim())
  else if (Array.isArray(value)) list = value
  else refuse(name, `has an unsupported type (got ${typeof value === 'function' ? 'a function' : JSON.stringify(value)})`)
  if (list.length === 0) return false
  return list.map((entry, i) => {
    const at = `${name}[${i}]`
    if (typeof entry === 'string' && NAMED_RANGES.has(entry)) return entry
    const parsed = parseCidr(entry)
    if (isCidrError(parsed)) refuse(at, `is not a valid address or CIDR (got ${JSON.stringify(entry)})`)
    if (parsed.prefix === 0) refuse(at, `(${JSON.stringify(entry)}) trusts every address, the same as true`)
    return parsed.text
  })
}
