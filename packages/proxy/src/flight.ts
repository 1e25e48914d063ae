import type http from 'node:http'
import type { Flight } from './relay'

/**
 * Where a request's proxy state lives: a symbol-keyed property of the request rather than a
 * WeakMap keyed by it (every WeakMap entry for a short-lived request is an ephemeron the garbage
 * collector traces in each scavenge).
 */
const FLIGHT = Symbol('gatehouse.proxy.flight')
type WithFlight = { [FLIGHT]?: Flight }

export const flightOf = (req: http.IncomingMessage): Flight | undefined => (req as WithFlight)[FLIGHT]

export const setFlight = (req: http.IncomingMessage, f: Flight): void => {
  ;(req as WithFlight)[FLIGHT] = f
}

/** An error with a code, as Node's own errors carry one. */
export const coded = (code: string, message: string): NodeJS.ErrnoException =>
  Object.assign(new Error(message), { code })
