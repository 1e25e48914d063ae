import type { Request, Response, Router } from 'express'
import { isGatehouseError } from '@gatehouse/core'
import type { IpFilterMiddleware } from '@gatehouse/ip-filter'
import type { CredentialVault } from '@gatehouse/credential-vault'
import type { ManagementContext } from './context'

/** Run a handler; a GatehouseError becomes its status and message, anything else a 500. */
function guarded(ctx: ManagementContext, fn: (req: Request, res: Response) => Promise<void> | void) {
  return (req: Request, res: Response): void => {
    Promise.resolve()
      .then(() => fn(req, res))
      .catch((err: unknown) => {
        if (isGatehouseError(err) && err.statusCode >= 400 && err.statusCode < 600) ctx.fail(res, err.statusCode, err.message)
        else ctx.fail(res, 500, 'Internal error')
      })
  }
}

/** `/security/ip-denylist`: the runtime denylist (GET, POST, DELETE one or all). */
export function mountDenylistRoutes(router: Router, ctx: ManagementContext, ipf: IpFilterMiddleware): void {
  router.get(
    '/security/ip-denylist',
    guarded(ctx, async (_req, res) => {
      res.json({ entries: await ipf.list() })
    }),
  )
  router.post(
    '/security/ip-denylist',
    guarded(ctx, async (req, res) => {
      const body = (req.body ?? {}) as { ip?: unknown; reason?: unknown; ttl_seconds?: unknown }
      if (typeof body.ip !== 'string' || body.ip.length === 0) return ctx.fail(res, 400, 'ip: must be an address or CIDR')
      if (body.reason !== undefined && typeof body.reason !== 'string') return ctx.fail(res, 400, 'reason: must be a string')
      if (body.ttl_seconds !== undefined && !(Number.isInteger(body.ttl_seconds) && (body.ttl_seconds as number) > 0)) {
        return ctx.fail(res, 400, 'ttl_seconds: must be a positive whole number')
      }
      const entry = await ipf.add(body.ip, {
        reason: typeof body.reason === 'string' ? body.reason : 'added through the management API',
        ...(typeof body.ttl_seconds === 'number' ? { ttlSeconds: body.ttl_seconds } : {}),
      })
      ctx.changed(req, res, 'denylist_add', { entry: body.ip, ...(typeof body.ttl_seconds === 'number' ? { ttl_seconds: body.ttl_seconds } : {}) })
      res.status(201).json(entry)
    }),
  )
  // The entry may be a CIDR with a slash: everything after the prefix is the entry.
  router.delete(
    /^\/security\/ip-denylist\/(.+)$/,
    guarded(ctx, async (req, res) => {
      const entry = decodeURIComponent((req.params as Record<string, string>)[0] ?? '')
      if (!(await ipf.remove(entry))) return ctx.fail(res, 404, 'No such denylist entry')
      ctx.changed(req, res, 'denylist_remove', { entry })
      res.json({ removed: entry })
    }),
  )
  router.delete(
    '/security/ip-denylist',
    guarded(ctx, async (req, res) => {
      const entries = await ipf.list()
      for (const e of entries) await ipf.remove(e.ip)
      ctx.changed(req, res, 'denylist_clear', { count: entries.length })
      res.json({ removed: entries.map((e) => e.ip) })
    }),
  )
}

/** `/auths`: upstream credentials in the vault (list masked, add, revoke, export). */
export function mountCredentialRoutes(router: Router, ctx: ManagementContext, vault: CredentialVault): void {
  router.get('/auths', (_req, res) => {
    res.json({ credentials: vault.list() })
  })
  router.get(
    '/auths/export',
    guarded(ctx, async (req, res) => {
      const q = req.url.indexOf('?')
      const includeSecrets = q !== -1 && new URLSearchParams(req.url.slice(q + 1)).get('include_secrets') === 'true'
      const exported = vault.export({ includeSecrets }, ctx.who(req, res))
      // Secrets leave only once the export is on record: the audit line is on disk first.
      if (includeSecrets && !(await ctx.auditWritten())) return ctx.fail(res, 503, 'Exporting secrets is refused while the audit log cannot be written')
      res.json(exported)
    }),
  )
  router.post(
    '/auths',
    guarded(ctx, async (req, res) => {
      res.status(201).json(await vault.add(req.body, ctx.who(req, res)))
    }),
  )
  router.delete(
    '/auths/:provider',
    guarded(ctx, async (req, res) => {
      res.json(await vault.revoke(String(req.params.provider), undefined, ctx.who(req, res)))
    }),
  )
  router.delete(
    '/auths/:provider/:id',
    guarded(ctx, async (req, res) => {
      res.json(await vault.revoke(String(req.params.provider), String(req.params.id), ctx.who(req, res)))
    }),
  )
}
