import { randomUUID } from 'node:crypto'
import type { RequestHandler } from 'express'
import { gatehouseLocals } from '@gatehouse/core'

const SAFE_ID = /^[A-Za-z0-9._:-]{8,128}$/

/**
 * The first layer: every request gets an id of the gateway's own making, echoed as
 * `X-Gatehouse-Request-Id` and carried by its audit-log lines, events and stored rows
 * (`request_id`). A client-supplied `X-Gatehouse-Request-Id` (or `X-Request-Id`) never becomes that
 * id: a tenant could otherwise give its requests the id of another tenant's, and an operator looking
 * up one would find both. When it is a plain token (no log injection through it), it is kept beside
 * the gateway's id as `client_request_id`, for the client's own correlation. `X-Request-Id` is
 * otherwise left to the provider, whose own id support asks for.
 */
export function requestId(): RequestHandler {
  return function requestIdMiddleware(req, res, next) {
    const locals = gatehouseLocals(res)
    const id = randomUUID()
    locals.requestId = id
    const given = req.headers['x-gatehouse-request-id'] ?? req.headers['x-request-id']
    if (typeof given === 'string' && SAFE_ID.test(given)) locals.clientRequestId = given
    res.setHeader('X-Gatehouse-Request-Id', id)
    next()
  }
}
