'use strict'
// An existing Express app (a tiny status API) with @gatehouse/hsts mounted in front of it.
const fs = require('node:fs')
const http = require('node:http')
const https = require('node:https')
const express = require('express')
const { hsts, httpsOnly } = require('@gatehouse/hsts')

function createApp({ onEvent } = {}) {
  const app = express() // X-Powered-By left on, as many apps do: hsts() removes it.

  // --- the lines this example is about: first in the chain ---
  app.use(
    hsts({
      strictTransportSecurity: 'max-age=31536000; includeSubDomains', // the seed's strings work as they are
      frameOptions: 'DENY',
      contentSecurityPolicy: "default-src 'none'; frame-ancestors 'none'",
    }),
  )
  app.use(httpsOnly({ onEvent: onEvent ?? ((event) => console.log(JSON.stringify(event))) }))
  // ------------------------------------------------------------

  // The app as it was.
  app.get('/status', (_req, res) => res.json({ up: true }))
  app.get('/fail', () => {
    throw new Error('something broke')
  })
  return app
}

module.exports = { createApp }

if (require.main === module) {
  const app = createApp()
  const port = Number(process.env.PORT ?? 3443)
  const httpPort = Number(process.env.HTTP_PORT ?? 3080)
  if (process.env.TLS_CERT && process.env.TLS_KEY) {
    const tls = { cert: fs.readFileSync(process.env.TLS_CERT), key: fs.readFileSync(process.env.TLS_KEY) }
    https.createServer(tls, app).listen(port, '127.0.0.1', () => console.log(`https://127.0.0.1:${port}`))
  }
  http.createServer(app).listen(httpPort, '127.0.0.1', () => console.log(`http://127.0.0.1:${httpPort} (plain HTTP: refused)`))
}
