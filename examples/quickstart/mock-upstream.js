'use strict'
// A local stand-in for the providers (OpenAI, Anthropic and Gemini JSON and SSE) on 127.0.0.1:8400.
//   node examples/quickstart/mock-upstream.js
const { MockUpstream } = require('@gatehouse/testing')

MockUpstream.start({}, { record: false, port: Number(process.env.PORT ?? 8400) }).then((up) => {
  process.stdout.write(`mock upstream on ${up.url}\n`)
})
