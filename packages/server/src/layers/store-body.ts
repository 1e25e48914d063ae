import type { RequestHandler } from 'express'
import { gatehouseLocals } from '@gatehouse/core'
import type { StorageSink } from '@gatehouse/storage'
import type {} from '@gatehouse/request-guard'

/**
 * storage.store_bodies: the body of every admitted request, as it is forwarded (after
 * request-guard's caps), is queued for storage with the request id; storage masks it before it
 * keeps it. Refused requests are not stored. Off the request path: recordBody never waits.
 */
export function storeBodyLayer(storage: StorageSink): RequestHandler {
  return function storeBodyMiddleware(_req, res, next) {
    const locals = gatehouseLocals(res)
    const body = locals.requestGuard?.rawBody
    if (body !== undefined && body.length > 0 && locals.requestId !== undefined) storage.recordBody(locals.requestId, body)
    next()
  }
}
