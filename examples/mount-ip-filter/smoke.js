'use strict'
// Starts the example on an ephemeral loopback port, sends real requests, and checks the answers.
const http = require('node:http')
const assert = require('node:assert/strict')
const { createApp } = require('./app')

function send(port, method, path, headers = {}, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let data = ''
      res.on('data', (c) => (data += c))
      res.on('end', () => resolve({ status: res.statusCode, body: data ? JSON.parse(data) : undefined }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

async function main() {
  const events = []
  const { app, filter } = createApp({ trustProxy: 'loopback', onEvent: (e) => events.push(e) })
  const server = app.listen(0, '127.0.0.1')
  await new Promise((r) => server.once('listening', r))
  const { port } = server.address()
  const json = { 'content-type': 'application/json' }
  try {
    let r = await send(port, 'GET', '/notes', { 'x-forwarded-for': '198.51.100.7' })
    assert.equal(r.status, 200)
    r = await send(port, 'GET', '/notes', { 'x-forwarded-for': '192.0.2.10' })
    assert.equal(r.status, 403)
    assert.equal(r.body.error.message, 'Access denied.')
    r = await send(port, 'POST', '/admin/denylist', json, JSON.stringify({ ip: '198.51.100.7', reason: 'demo', ttl_seconds: 60 }))
    assert.equal(r.status, 201)
    r = await send(port, 'GET', '/notes', { 'x-forwarded-for': '::ffff:198.51.100.7' })
    assert.equal(r.status, 403)
    assert.equal(events.length, 2)
    assert.equal(events[1].details.reason, 'demo')
    console.log('ok: allowed 198.51.100.7, refused 192.0.2.10 (static) and 198.51.100.7 after a runtime add; 2 events')
  } finally {
    server.close()
    await filter.shutdown()
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
