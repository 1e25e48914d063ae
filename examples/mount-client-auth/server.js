'use strict'
// An existing Express app that mounts only @gatehouse/client-auth in front of its own routes.
//   node examples/mount-client-auth/server.js          (from the repository root, after npm run build)
// It prints a freshly issued key; call it with:
//   curl -s -H "Authorization: Bearer <key>" http://127.0.0.1:3000/v1/whoami
const express = require('express')
const { mkdtempSync } = require('node:fs')
const { tmpdir } = require('node:os')
const { join } = require('node:path')
const { clientAuth, FileKeyStore, loadOrCreateSalt } = require('@gatehouse/client-auth')

const authDir = process.env.AUTH_DIR ?? mkdtempSync(join(tmpdir(), 'mount-client-auth-'))
const store = new FileKeyStore({ file: join(authDir, 'client-keys.json'), salt: loadOrCreateSalt(authDir) })
const { key, record } = store.create({ name: 'example' })

const app = express()
app.disable('x-powered-by')
app.get('/health', (_req, res) => res.json({ ok: true })) // public: mounted before the guard
app.use(
  clientAuth({
    store,
    onEvent: (event) => process.stderr.write(`${JSON.stringify(event)}\n`), // key ids only, never keys
  }),
)
app.get('/v1/whoami', (_req, res) => res.json({ key_id: res.locals.gatehouse.clientKeyId }))

const port = Number(process.env.PORT ?? 3000)
const server = app.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening on http://127.0.0.1:${server.address().port}\n`)
  process.stdout.write(`issued ${record.id}: ${key}\n`)
})
module.exports = { app, server, key }
