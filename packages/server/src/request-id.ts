import { randomUUID } from 'node:crypto'
import type { RequestHandler } from 'express'
import { gatehouseLocals } from '@gatehouse/core'

const SAFE_ID = /^[A-Za-z0-9._:-]{8,128}$/

/**
 * The first layer: every request gets an id, echoed as `X-Request-Id`. A client-supplied id is kept
 * only when it is a plain token (no log injection through it).
 */
export function requestId(): RequestHandler {
  return function requestIdMiddleware(req, res, next) {
    const given = req.headers['x-request-id']
    const id = typeof given === 'string' && SAFE_ID.test(given) ? given : randomUUID()
    gatehouseLocals(res).requestId = id
    res.setHeader('X-Request-Id', id)
    next()
  }
}
