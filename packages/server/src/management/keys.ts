import type { Router } from 'express'
import { isGatehouseError, parseDuration, type KeyLimitScope } from '@gatehouse/core'
import { validateKeyScope, type ManagedKeyStore } from '@gatehouse/client-auth'
import type { ManagementContext } from './context'

/** `/keys`: list, create, rotate and revoke client keys (the key is shown once, never stored). */
export function mountKeyRoutes(router: Router, ctx: ManagementContext, keyStore: ManagedKeyStore): void {
  router.get('/keys', (_req, res) => {
    res.json({ keys: keyStore.list().map(({ hash: _hash, ...k }) => k) })
  })
  router.post('/keys', async (req, res) => {
    const body = (req.body ?? {}) as { name?: unknown; providers?: unknown; endpoints?: unknown; models?: unknown; limits?: unknown; networks?: unknown; objects?: unknown }
    if (typeof body.name !== 'string' || body.name.length === 0 || body.name.length > 100) {
      ctx.fail(res, 400, 'name: must be a string of 1 to 100 characters')
      return
    }
    try {
      validateKeyScope(body)
    } catch (e) {
      ctx.fail(res, 400, (e as Error).message.replace('@gatehouse/client-auth: ', ''))
      return
    }
    const { key, record } = await keyStore.create({
      name: body.name,
      ...(body.providers !== undefined ? { providers: body.providers as string[] } : {}),
      ...(body.endpoints !== undefined ? { endpoints: body.endpoints as string[] } : {}),
      ...(body.models !== undefined ? { models: body.models as string[] } : {}),
      ...(body.networks !== undefined ? { networks: body.networks as string[] } : {}),
      ...(body.objects !== undefined ? { objects: body.objects as string[] } : {}),
      ...(body.limits !== undefined ? { limits: body.limits as KeyLimitScope } : {}),
    })
    ctx.changed(req, res, 'key_created', { key_id: record.id, name: record.name })
    res.status(201).json({ id: record.id, name: record.name, key, note: 'The key is shown once and never stored.' })
  })
  router.post('/keys/:id/rotate', async (req, res) => {
    const id = String(req.params.id)
    const body = (req.body ?? {}) as { grace?: unknown }
    let graceMs: number
    try {
      graceMs = parseDuration((body.grace ?? '24h') as string, 'grace')
    } catch (e) {
      ctx.fail(res, 400, (e as Error).message)
      return
    }
    if (!keyStore.list().some((k) => k.id === id)) {
      ctx.fail(res, 404, 'No key with that id')
      return
    }
    try {
      const r = await keyStore.rotate(id, graceMs)
      ctx.changed(req, res, 'key_rotated', { key_id: r.previous.id, successor: r.record.id, valid_until: r.previous.expires_at })
      res.status(201).json({ id: r.record.id, name: r.record.name, key: r.key, previous: { id: r.previous.id, valid_until: r.previous.expires_at }, note: 'The key is shown once and never stored.' })
    } catch (e) {
      if (isGatehouseError(e) && e.statusCode === 409) return ctx.fail(res, 409, e.message.replace('@gatehouse/client-auth: ', ''))
      throw e
    }
  })
  router.delete('/keys/:id', async (req, res) => {
    const id = String(req.params.id)
    if (!keyStore.list().some((k) => k.id === id)) {
      ctx.fail(res, 404, 'No key with that id')
      return
    }
    const r = await keyStore.revoke(id)
    ctx.changed(req, res, 'key_revoked', { key_id: r.id })
    res.json({ id: r.id, revoked_at: r.revoked_at })
  })
  router.delete('/keys', async (req, res) => {
    const ids = keyStore.list().filter((k) => !k.revoked_at).map((k) => k.id)
    for (const id of ids) await keyStore.revoke(id)
    ctx.changed(req, res, 'keys_revoked_all', { count: ids.length })
    res.json({ revoked: ids })
  })
}
