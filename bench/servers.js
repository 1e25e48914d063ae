'use strict'
// One server of the benchmark, in its own process so each gets its own event loop:
//   node bench/servers.js upstream
//   node bench/servers.js express|node|gateway <upstream-url> <workdir>
// Prints {"url": "..."} (and for the gateway {"key": "..."}) on its first stdout line.
const http = require('node:http')
const path = require('node:path')

const [mode, upstreamUrl, workdir] = process.argv.slice(2)
const root = path.join(__dirname, '..')
const ready = (info) => process.stdout.write(`${JSON.stringify(info)}\n`)
process.on('SIGINT', () => process.exit(0))

async function main() {
  if (mode === 'upstream' || mode === 'upstream-paced') {
    const { MockUpstream } = require(path.join(root, 'packages/testing/dist'))
    // upstream-paced: 6 chunks 100 ms apart, to see whether the gateway relays them as they come.
    const behaviour = mode === 'upstream' ? { chunks: 8 } : { chunks: 6, chunkIntervalMs: 100 }
    const up = await MockUpstream.start(behaviour, { record: false })
    ready({ url: up.url })
    return
  }
  const { createProxyMiddleware } = require('http-proxy-middleware')
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 })
  if (mode === 'express') {
    // (a) the naive proxy: bare express 5 + http-proxy-middleware with an upstream keep-alive agent.
    const express = require('express')
    const app = express()
    app.use(createProxyMiddleware({ target: upstreamUrl, changeOrigin: true, agent }))
    const server = app.listen(0, '127.0.0.1', () => ready({ url: `http://127.0.0.1:${server.address().port}` }))
    return
  }
  if (mode === 'node') {
    // (b) bare node:http + http-proxy-middleware.
    const proxy = createProxyMiddleware({ target: upstreamUrl, changeOrigin: true, agent })
    const server = http.createServer((req, res) => proxy(req, res, () => res.writeHead(404).end()))
    server.listen(0, '127.0.0.1', () => ready({ url: `http://127.0.0.1:${server.address().port}` }))
    return
  }
  if (mode === 'gateway' || mode === 'gateway-redis' || mode === 'gateway-nosecrets') {
    // (c) the Gatehouse gateway with every layer this build has, configured as an operator would.
    const { createGateway, defaultConfig } = require(path.join(root, 'packages/server/dist'))
    const config = defaultConfig()
    config.server.port = 0
    config.auth.dir = path.join(workdir, 'auths')
    config.logging.audit.file = path.join(workdir, 'logs', 'audit.log')
    config.metrics.port = 0
    // Limits well above the offered load, so they are evaluated on every request but never refuse.
    config.server.security.rate_limiting = { enabled: true, requests_per_second: 1e6, burst: 1e6, per_ip: true, never_block: [] }
    // Every client key's own limits on (requests and tokens per minute, monthly tokens, concurrency).
    config.auth.key_limits = { requests_per_minute: 1e9, tokens_per_minute: 1e12, monthly_tokens: 1e15, concurrency: 1e6 }
    for (const p of ['claude', 'openai', 'gemini']) {
      config.providers[p] = { enabled: true, base_url: upstreamUrl, max_tokens: 4096, api_key: `bench-${p}-key-${process.pid}` }
    }
    // BENCH_OFF=audit,metrics,… turns layers off, to see what each one costs.
    const off = new Set((process.env.BENCH_OFF ?? '').split(',').filter(Boolean))
    if (off.has('audit')) config.logging.audit.enabled = false
    if (off.has('metrics')) config.metrics.enabled = false
    if (off.has('alerts')) config.alerts = []
    if (off.has('ratelimit')) config.server.security.rate_limiting.enabled = false
    if (off.has('headers')) config.server.security.headers.enabled = false
    if (off.has('fingerprint')) config.device_fingerprint.enabled = false
    if (off.has('auth')) config.auth.client_auth.enabled = false
    if (off.has('keylimits')) config.auth.key_limits = {}
    // gateway-nosecrets: the same gateway with outbound secret detection off, to price the detection.
    if (off.has('secrets') || mode === 'gateway-nosecrets') config.secret_detection.enabled = false
    // BENCH_STORE_URL=redis://… puts rate limits, quotas and the runtime denylist in Redis (keys under a
    // prefix of this process's own, so runs never share state).
    if (process.env.BENCH_STORE_URL) config.store = { ...config.store, type: 'redis', url: process.env.BENCH_STORE_URL, on_error: 'deny', replicas: 1, key_prefix: `gatehouse-bench-${process.pid}:` }
    // gateway-redis: cluster mode (keys, maintenance and the kill switch shared through Redis too).
    if (mode === 'gateway-redis') config.store = { ...config.store, type: 'redis', url: process.env.BENCH_CLUSTER, on_error: 'local', replicas: 1, key_prefix: `gatehouse-bench-${process.pid}:` }
    // BENCH_STORAGE_URL=postgresql://… turns request storage on (a migrated schema is expected).
    if (process.env.BENCH_STORAGE_URL) config.storage = { enabled: true, url: process.env.BENCH_STORAGE_URL, store_bodies: false, retention_days: 30 }
    const noop = () => undefined
    const gateway = createGateway(config, { logger: { error: noop, warn: noop, info: noop, debug: noop }, cwd: workdir })
    const { url } = await gateway.listen()
    const { key } = await gateway.keyStore.create({ name: 'bench' })
    ready({ url, key, ...(config.store.type === 'redis' ? { redisPrefix: config.store.key_prefix } : {}) })
    return
  }
  throw new Error(`unknown mode ${mode}`)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
