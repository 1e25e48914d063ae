import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http'
import type { RequestHandler } from 'express'
import { GatehouseConfigError, gatehouseLocals, isGatehouseError } from '@gatehouse/core'
import { loadOrCreateDeviceFingerprint } from './fingerprint'
import { resolveDeviceFingerprintConfig, type DeviceFingerprintOptions } from './options'

declare module '@gatehouse/core' {
  interface GatehouseLocals {
    /** The fingerprint header set on the upstream request (the name only; the value is not kept here). */
    deviceFingerprint?: { header: string }
  }
}

/** The value lives in a non-enumerable symbol slot of res.locals: never serialised with the locals. */
const SLOT = Symbol.for('gatehouse.device-fingerprint')

interface Slot {
  readonly header: string
  readonly fingerprint: string
}

const slotOf = (res: ServerResponse): Slot | undefined =>
  (res as ServerResponse & { locals?: Record<PropertyKey, unknown> }).locals?.[SLOT] as Slot | undefined

/** The middleware, with the fingerprint it sends (for the server's start-up log and `doctor`). */
export type DeviceFingerprintMiddleware = RequestHandler & {
  readonly fingerprint: string
  /** The header name, lower case. */
  readonly header: string
}

/**
 * Sets the device fingerprint header on every request going upstream (replacing any value a client
 * sent). The fingerprint is computed and persisted at construction (sync), so a bad directory stops
 * the start with a GatehouseConfigError.
 */
export function deviceFingerprint(options: DeviceFingerprintOptions): DeviceFingerprintMiddleware {
  const config = resolveDeviceFingerprintConfig(options)
  let loaded: ReturnType<typeof loadOrCreateDeviceFingerprint>
  try {
    loaded = loadOrCreateDeviceFingerprint(config)
  } catch (err) {
    if (isGatehouseError(err)) throw new GatehouseConfigError(err.code, err.message, { cause: err })
    throw err
  }
  const header = config.header.toLowerCase()
  const slot: Slot = Object.freeze({ header, fingerprint: loaded.fingerprint })
  const middleware = function deviceFingerprintMiddleware(req, res, next) {
    req.headers[header] = loaded.fingerprint
    Object.defineProperty(res.locals, SLOT, { value: slot, enumerable: false, configurable: true })
    gatehouseLocals(res).deviceFingerprint = { header }
    next()
  } as RequestHandler
  return Object.defineProperties(middleware, {
    fingerprint: { value: loaded.fingerprint, enumerable: false },
    header: { value: header, enumerable: false },
  }) as DeviceFingerprintMiddleware
}

/**
 * Set the fingerprint on the outgoing proxy request, for a proxy that builds its own headers:
 * `on: { proxyReq: (proxyReq, req, res) => applyDeviceFingerprint(proxyReq, res) }`.
 */
export function applyDeviceFingerprint(proxyReq: ClientRequest, res: ServerResponse): boolean {
  const slot = slotOf(res)
  if (!slot || proxyReq.headersSent) return false
  proxyReq.setHeader(slot.header, slot.fingerprint)
  return true
}

/**
 * Remove the fingerprint header from an upstream response before it is copied to the client (an
 * upstream that echoes request headers): `on: { proxyRes: (proxyRes, req, res) => stripDeviceFingerprint(proxyRes, res) }`.
 * Without a fingerprint slot on `res`, `header` names the header to remove.
 */
export function stripDeviceFingerprint(proxyRes: IncomingMessage, res?: ServerResponse, header = 'x-device-fingerprint'): void {
  const name = (res && slotOf(res)?.header) ?? header.toLowerCase()
  delete proxyRes.headers[name]
  for (let i = proxyRes.rawHeaders.length - 2; i >= 0; i -= 2) {
    if (proxyRes.rawHeaders[i]?.toLowerCase() === name) proxyRes.rawHeaders.splice(i, 2)
  }
}
