import { randomUUID } from 'node:crypto'
import type { RequestHandler } from 'express'
import { gatehouseLocals } from '@gatehouse/core'

const SAFE_ID = /^[A-Za-z0-9._:-]{8,128}$/

/**
 * The first layer: every request gets an id, echoed as `X-Gatehouse-Request-Id` and carried by its
 * audit-log lines (`request_id`). `X-Request-Id` is left to the provider, whose own id support asks
 * for. A client-supplied `X-Gatehouse-Request-Id` (or `X-Request-Id`) is kept only when it is a plain
 * token (no log injection through it).
 */
export function requestId(): RequestHandler {
  return function requestIdMiddleware(req, res, next) {
    const given = req.headers['x-gatehouse-request-id'] ?? req.headers['x-request-id']
    const id = typeof given === 'string' && SAFE_ID.test(given) ? given : randomUUID()
    gatehouseLocals(res).requestId = id
    res.setHeader('X-Gatehouse-Request-Id', id)
    next()
  }
}
