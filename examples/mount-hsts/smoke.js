'use strict'
// Starts the example over HTTPS (with a throwaway certificate from @gatehouse/testing's generator)
// and over plain HTTP on free loopback ports, sends real requests, and checks the answers.
const http = require('node:http')
const https = require('node:https')
const assert = require('node:assert/strict')
const { createApp } = require('./app')

function get(mod, port, path, extra = {}) {
  return new Promise((resolve, reject) => {
    const req = mod.request({ host: '127.0.0.1', port, path, agent: false, ...extra }, (res) => {
      let data = ''
      res.on('data', (c) => (data += c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }))
    })
    req.on('error', reject)
    req.end()
  })
}

async function listen(server) {
  server.listen(0, '127.0.0.1')
  await new Promise((r) => server.once('listening', r))
  return server.address().port
}

async function main() {
  const events = []
  const app = createApp({ onEvent: (e) => events.push(e) })
  app.set('env', 'test') // Express's final handler would print the /fail stack trace to stderr otherwise
  const { generateCertificate } = require('@gatehouse/testing')
  const tls = generateCertificate({ commonName: 'localhost' })
  const secure = https.createServer(tls, app)
  const plain = http.createServer(app)
  const sPort = await listen(secure)
  const pPort = await listen(plain)
  try {
    const ok = await get(https, sPort, '/status', { ca: tls.cert, servername: 'localhost' })
    assert.equal(ok.status, 200)
    assert.equal(ok.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains')
    assert.equal(ok.headers['x-frame-options'], 'DENY')
    assert.equal(ok.headers['cache-control'], 'no-store')
    assert.equal(ok.headers['x-powered-by'], undefined)
    const failed = await get(https, sPort, '/fail', { ca: tls.cert, servername: 'localhost' })
    assert.equal(failed.status, 500)
    assert.equal(failed.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains')
    const refused = await get(http, pPort, '/status')
    assert.equal(refused.status, 403)
    assert.equal(JSON.parse(refused.body).error.message, 'HTTPS is required.')
    assert.equal(refused.headers['x-content-type-options'], 'nosniff')
    assert.equal(events.length, 1)
    console.log('ok: HTTPS 200 with the headers, error page with the headers, plain HTTP 403 with one event')
  } finally {
    secure.close()
    plain.close()
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
