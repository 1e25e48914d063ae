'use strict'
// An existing Express app that mounts only @gatehouse/proxy in front of OpenAI.
//   OPENAI_API_KEY=sk-... node examples/mount-proxy/server.js    (from the repository root, after npm run build)
// OPENAI_BASE_URL points it elsewhere (a local mock provider, a regional endpoint). Then:
//   curl -s http://127.0.0.1:3000/v1/chat/completions -H 'content-type: application/json' \
//     -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
// Put your own authentication in front of it: as mounted here, anyone who reaches the port spends the key.
const express = require('express')
const { gatehouseProxy } = require('@gatehouse/proxy')

const apiKey = process.env.OPENAI_API_KEY
if (!apiKey) {
  process.stderr.write('OPENAI_API_KEY is not set\n')
  process.exit(2)
}

const app = express()
app.disable('x-powered-by')
app.get('/health', (_req, res) => res.json({ ok: true }))
app.use(
  gatehouseProxy({
    providers: { openai: { baseUrl: process.env.OPENAI_BASE_URL ?? 'https://api.openai.com', apiKey } },
    // Refused endpoints and missing credentials, as events (no secret in them).
    onEvent: (event) => process.stderr.write(`${JSON.stringify(event)}\n`),
  }),
)

const port = Number(process.env.PORT ?? 3000)
const server = app.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening on http://127.0.0.1:${server.address().port}\n`)
})
