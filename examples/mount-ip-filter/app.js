'use strict'
// An existing Express app (a tiny notes API) with @gatehouse/ip-filter mounted in front of it.
const express = require('express')
const { ipFilter, validateTrustProxy } = require('@gatehouse/ip-filter')

function createApp({ trustProxy = false, onEvent } = {}) {
  const app = express()
  app.disable('x-powered-by')
  // The filter checks req.ip, so Express must know which proxies to believe. Never `true`.
  app.set('trust proxy', validateTrustProxy(trustProxy, 'TRUST_PROXY'))

  // --- the two lines this example is about ---
  const filter = ipFilter({
    denylist: ['192.0.2.0/24', '2001:db8:bad::/48'],
    onEvent: onEvent ?? ((event) => console.log(JSON.stringify(event))),
  })
  app.use(filter)
  // -------------------------------------------

  // The app as it was.
  const notes = []
  app.use(express.json())
  app.get('/notes', (_req, res) => res.json(notes))
  app.post('/notes', (req, res) => {
    notes.push(String(req.body?.text ?? ''))
    res.status(201).json({ id: notes.length })
  })

  // A runtime denylist endpoint for operators (loopback only, like the gateway's management API).
  app.post('/admin/denylist', (req, res, next) => {
    if (!['127.0.0.1', '::1', '::ffff:127.0.0.1'].includes(req.socket.remoteAddress)) return res.sendStatus(404)
    filter
      .add(req.body.ip, { reason: req.body.reason, ttlSeconds: req.body.ttl_seconds })
      .then((entry) => res.status(201).json(entry), next)
  })
  app.get('/admin/denylist', (_req, res, next) => filter.list().then((l) => res.json(l), next))
  app.use((err, _req, res, next) => {
    if (res.headersSent) return next(err)
    res.status(err.statusCode ?? 500).json({ code: err.code, message: err.message })
  })
  return { app, filter }
}

module.exports = { createApp }

if (require.main === module) {
  const trust = process.env.TRUST_PROXY
  const { app } = createApp({ trustProxy: trust === undefined ? false : /^\d+$/.test(trust) ? Number(trust) : trust })
  const port = Number(process.env.PORT ?? 3000)
  app.listen(port, '127.0.0.1', () => console.log(`notes API with ip-filter on http://127.0.0.1:${port}`))
}
