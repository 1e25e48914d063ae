import type { AddressInfo } from 'node:net'
import type http from 'node:http'
import express, { type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express'
import { composeLayers, createPipelineServer } from '@gatehouse/proxy'

/** The pipeline seam (docs/performance.md §1): same answers as the app, errors to the error handler. */

async function serve(fastPath: boolean): Promise<{ url: string; server: http.Server }> {
  const app = express()
  const layers: RequestHandler[] = [
    (req, res, next) => {
      res.setHeader('x-first', '1')
      next()
    },
    (req, res, next) => {
      if (req.path === '/throw') throw new Error('thrown in a layer')
      if (req.path === '/next-error') return next(Object.assign(new Error('passed on'), { statusCode: 418 }))
      if (req.path === '/ok') return void res.json({ ok: true, proto: typeof req.get === 'function' && typeof res.json === 'function' })
      next()
    },
  ]
  const async: RequestHandler = (req, _res, next) => {
    if (req.path === '/reject') return Promise.reject(new Error('rejected in a layer')) as unknown as void
    next()
  }
  const front = composeLayers(layers)
  const back = composeLayers([async])
  app.get('/healthz', (_req, res) => void res.json({ health: true }))
  app.use(front)
  app.use(back)
  const onError = (err: unknown, _req: Request, res: Response): void => {
    const status = (err as { statusCode?: number }).statusCode ?? 500
    res.status(status).json({ error: String((err as Error).message) })
  }
  const errorHandler: ErrorRequestHandler = (err, req, res, _next) => onError(err, req, res)
  app.use(errorHandler)
  const notFound = (_req: Request, res: Response): void => void res.status(404).json({ error: 'not found' })
  app.use(notFound)
  const server = createPipelineServer({ app, layers: [front, back], onError, notFound, fastPath }) as http.Server
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }
}

describe('createPipelineServer', () => {
  it('answers every path as the plain Express app does; errors, throws and rejections reach the error handler', async () => {
    const fast = await serve(true)
    const plain = await serve(false)
    try {
      for (const path of ['/ok', '/throw', '/next-error', '/reject', '/nowhere', '/healthz', '/HEALTHZ']) {
        const a = await fetch(fast.url + path)
        const b = await fetch(plain.url + path)
        expect([path, a.status, a.headers.get('x-first'), await a.text()]).toEqual([path, b.status, b.headers.get('x-first'), await b.text()])
      }
      const ok = (await (await fetch(`${fast.url}/ok`)).json()) as { proto: boolean }
      expect(ok.proto).toBe(true)
      expect((await fetch(`${fast.url}/throw`)).status).toBe(500)
      expect((await fetch(`${fast.url}/next-error`)).status).toBe(418)
      expect((await fetch(`${fast.url}/reject`)).status).toBe(500)
      // The app's own route: the composed layers never ran for it.
      const health = await fetch(`${fast.url}/healthz`)
      expect(health.headers.get('x-first')).toBeNull()
    } finally {
      await new Promise((r) => fast.server.close(r))
      await new Promise((r) => plain.server.close(r))
    }
  })

  it('GATEHOUSE_PIPELINE=express turns the seam off', async () => {
    process.env.GATEHOUSE_PIPELINE = 'express'
    try {
      const app = express()
      const server = createPipelineServer({ app, layers: [], onError: () => undefined, notFound: () => undefined })
      // Off: every request goes to the app itself.
      expect(server.listeners('request')).toEqual([app])
      server.close()
    } finally {
      delete process.env.GATEHOUSE_PIPELINE
    }
  })
})
