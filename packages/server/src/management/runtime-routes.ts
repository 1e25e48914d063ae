import type { Router } from 'express'
import { isProviderName } from '@gatehouse/core'
import type { ManagementContext, ManagementOptions } from './context'

/** `/maintenance` and `/providers/:name`: maintenance mode and the per-provider kill switch, through the runtime control. */
export function mountRuntimeRoutes(router: Router, ctx: ManagementContext, options: Pick<ManagementOptions, 'control' | 'runtime'>): void {
  router.put('/maintenance', async (req, res) => {
    const body = (req.body ?? {}) as { enabled?: unknown; message?: unknown }
    if (typeof body.enabled !== 'boolean' || (body.message !== undefined && typeof body.message !== 'string')) {
      ctx.fail(res, 400, 'body must be {"enabled": boolean, "message"?: string}')
      return
    }
    await options.control.setMaintenance({
      enabled: body.enabled,
      message: typeof body.message === 'string' ? body.message : options.runtime.maintenance.message,
    })
    ctx.changed(req, res, 'maintenance', { enabled: body.enabled })
    res.json(options.runtime.maintenance)
  })
  router.put('/providers/:name', async (req, res) => {
    const name = String(req.params.name)
    const body = (req.body ?? {}) as { enabled?: unknown; message?: unknown }
    if (!isProviderName(name)) {
      ctx.fail(res, 404, 'Unknown provider')
      return
    }
    if (typeof body.enabled !== 'boolean' || (body.message !== undefined && typeof body.message !== 'string')) {
      ctx.fail(res, 400, 'body must be {"enabled": boolean, "message"?: string}')
      return
    }
    await options.control.setProvider(name, body.enabled ? undefined : typeof body.message === 'string' ? body.message : `Provider ${name} is temporarily disabled`)
    ctx.changed(req, res, 'provider_switch', { provider: name, enabled: body.enabled })
    res.json({ provider: name, enabled: body.enabled })
  })
}
