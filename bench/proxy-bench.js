'use strict'
// Gatehouse proxy benchmark: JSON and SSE through
//   (a) bare express 5 + http-proxy-middleware (keep-alive agent),
//   (b) bare node:http + http-proxy-middleware,
//   (c) the gateway with every layer it has,
// against the same mock upstream, in one run, rotating the order between rounds.
// Bounded: ROUNDS x 3 targets x 2 payloads x DURATION seconds (defaults: 5 x 3 x 2 x 4 s ≈ 2 min).
// The ratios are paired: c/a is worked out per round, from runs a few seconds apart, and the median
// of those is reported, so that a machine whose speed drifts over minutes compares like with like.
// Usage: npm run bench   (env: BENCH_ROUNDS, BENCH_DURATION, BENCH_CONNECTIONS; for the gateway:
// BENCH_OFF=audit,metrics,alerts,ratelimit,headers,fingerprint,auth,keylimits turns layers off,
// BENCH_STORE_URL=redis://127.0.0.1:6379 puts the rate limiter's state in Redis; BENCH_CLUSTER=redis://…
// adds the gateway in cluster mode as a fourth target; BENCH_SECRETS=1 adds it with outbound secret
// detection off, to price the detection; BENCH_PIN=1 pins targets and load to CPUs)
const { mkdtempSync, rmSync } = require('node:fs')
const { tmpdir } = require('node:os')
const path = require('node:path')

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const DURATION = Number(process.env.BENCH_DURATION ?? 4)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32)
const { killChildren, load, startServer } = require('./children')


const run = (url, headers, body) => load(url, headers, body, { connections: CONNECTIONS, duration: DURATION })

/**
 * Concurrency 1: one keep-alive connection, requests one after another (bounded in count and time);
 * per-request latency in microseconds, measured in this process with hrtime.
 */
function latencyAtOne(url, headers, body, count = 1500, limitMs = 15_000) {
  const http = require('node:http')
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const u = new URL(url)
  const samples = []
  const started = Date.now()
  const one = () =>
    new Promise((resolve, reject) => {
      const t0 = process.hrtime.bigint()
      const req = http.request(
        { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } },
        (res) => {
          res.resume()
          res.on('end', () => {
            if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`))
            samples.push(Number(process.hrtime.bigint() - t0) / 1000)
            resolve()
          })
        },
      )
      req.on('error', reject)
      req.end(body)
    })
  return (async () => {
    for (let i = 0; i < count && Date.now() - started < limitMs; i++) await one()
    agent.destroy()
    const s = samples.slice(Math.floor(samples.length / 10)).sort((a, b) => a - b) // the first tenth warms up
    return { p50: s[Math.floor(s.length * 0.5)], p99: s[Math.floor(s.length * 0.99)], n: s.length }
  })()
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

/** One Anthropic stream through the gateway from a paced upstream: the gaps between content chunks. */
async function sseArrivalGaps(url, key) {
  const res = await fetch(`${url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': key },
    body: JSON.stringify({ model: 'm', max_tokens: 16, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
  })
  const reader = res.body.getReader()
  const decoder = new TextDecoder()
  const arrivals = []
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    if (decoder.decode(value).includes('content_block_delta')) arrivals.push(Date.now())
  }
  return arrivals.slice(1).map((t, i) => t - arrivals[i])
}

async function main() {
  const workdir = mkdtempSync(path.join(tmpdir(), 'gh-bench-'))
  // Removed on every way out, a signal included (process.exit skips the finally below).
  process.on('exit', () => {
    killChildren()
    rmSync(workdir, { recursive: true, force: true })
    rmSync(workdir + '-paced', { recursive: true, force: true })
    rmSync(workdir + '-redis', { recursive: true, force: true })
  })
  try {
    // BENCH_PIN=1 (on a machine of two or more CPUs): the proxies under test on CPU 0, the mock
    // upstream and the load generator (this process) on CPU 1, so that each target has one core to
    // itself and the load does not compete with it for the scheduler's favour.
    const pin = process.env.BENCH_PIN === '1' && require('node:os').availableParallelism() >= 2
    if (pin) require('node:child_process').execFileSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' })
    const upstream = await startServer(['upstream'], pin ? '1' : undefined)
    const targets = {
      a: await startServer(['express', upstream.url, workdir], pin ? '0' : undefined),
      b: await startServer(['node', upstream.url, workdir], pin ? '0' : undefined),
      c: await startServer(['gateway', upstream.url, workdir], pin ? '0' : undefined),
    }
    // BENCH_CLUSTER=redis://…: a fourth target, the same gateway in cluster mode (limits, keys and
    // runtime state in that Redis), so that Redis mode is compared with memory mode in one run.
    if (process.env.BENCH_CLUSTER) targets.d = await startServer(['gateway-redis', upstream.url, `${workdir}-redis`], pin ? '0' : undefined)
    // BENCH_SECRETS=1: a fifth target, the gateway with outbound secret detection off, to price the detection.
    if (process.env.BENCH_SECRETS === '1') targets.e = await startServer(['gateway-nosecrets', upstream.url, `${workdir}-nosecrets`], pin ? '0' : undefined)
    const names = { a: 'express + hpm', b: 'node:http + hpm', c: 'gatehouse', d: 'gatehouse, cluster mode (redis)', e: 'gatehouse, secret detection off' }
    const payloads = {
      json: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] }),
      sse: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hello' }] }),
    }
    const order = ['a', 'b', 'c', ...(targets.d ? ['d'] : []), ...(targets.e ? ['e'] : [])]
    const results = { json: Object.fromEntries(order.map((t) => [t, []])), sse: Object.fromEntries(order.map((t) => [t, []])) }
    // Warm-up: JIT and connection pools.
    for (const t of order) await run(`${targets[t].url}/v1/chat/completions`, { 'x-api-key': targets[t].key ?? '' }, payloads.json).catch(() => undefined)
    for (let round = 0; round < ROUNDS; round++) {
      const rotated = order.slice(round % order.length).concat(order.slice(0, round % order.length))
      for (const kind of ['json', 'sse']) {
        for (const t of rotated) {
          const headers = targets[t].key ? { 'x-api-key': targets[t].key } : {}
          const r = await run(`${targets[t].url}/v1/chat/completions`, headers, payloads[kind])
          if (r.non2xx > 0 || r.errors > 0) throw new Error(`${names[t]} ${kind}: ${r.non2xx} non-2xx, ${r.errors} errors`)
          results[kind][t].push({ rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99 })
          process.stderr.write(`round ${round + 1} ${kind} ${names[t]}: ${r.requests.average.toFixed(0)} req/s\n`)
        }
      }
    }
    const lines = []
    lines.push(`Gatehouse proxy benchmark: ${ROUNDS} rounds x ${DURATION}s, ${CONNECTIONS} connections, node ${process.version}`)
    lines.push(`targets ${pin ? 'pinned to CPU 0, upstream and load on CPU 1' : 'not pinned'}`)
    lines.push(`gateway: ${process.env.BENCH_OFF ? `layers off: ${process.env.BENCH_OFF}` : 'every layer on'}; rate-limit store: ${process.env.BENCH_STORE_URL ? 'redis' : 'memory'}`)
    lines.push('| payload | target | req/s (median) | p50 ms | p99 ms |')
    lines.push('| --- | --- | ---: | ---: | ---: |')
    const med = {}
    for (const kind of ['json', 'sse']) {
      med[kind] = {}
      for (const t of order) {
        const rs = results[kind][t]
        med[kind][t] = median(rs.map((x) => x.rps))
        lines.push(`| ${kind} | ${names[t]} | ${med[kind][t].toFixed(0)} | ${median(rs.map((x) => x.p50))} | ${median(rs.map((x) => x.p99))} |`)
      }
    }
    for (const kind of ['json', 'sse']) {
      const paired = (x, y) => results[kind][x].map((r, i) => r.rps / results[kind][y][i].rps)
      const ca = paired('c', 'a')
      const cb = paired('c', 'b')
      const list = (xs) => xs.map((x) => x.toFixed(2)).join(' ')
      lines.push(`${kind}: c/a = ${median(ca).toFixed(2)}x (rounds: ${list(ca)}), c/b = ${median(cb).toFixed(2)}x (rounds: ${list(cb)})`)
      if (targets.e) {
        const ce = paired('c', 'e')
        lines.push(`${kind}: secret detection on/off c/e = ${median(ce).toFixed(2)}x (rounds: ${list(ce)})`)
      }
      if (targets.d) {
        const dc = paired('d', 'c')
        const da = paired('d', 'a')
        lines.push(`${kind}: cluster mode d/c = ${median(dc).toFixed(2)}x (rounds: ${list(dc)}), d/a = ${median(da).toFixed(2)}x`)
      }
    }
    // Added latency at concurrency 1 (JSON), gateway against bare express + hpm, alternated.
    const one = { a: [], c: [] }
    for (let i = 0; i < 3; i++) {
      for (const t of ['a', 'c']) one[t].push(await latencyAtOne(`${targets[t].url}/v1/chat/completions`, t === 'c' ? { 'x-api-key': targets.c.key } : {}, payloads.json))
    }
    const lat = (t, k) => median(one[t].map((x) => x[k]))
    lines.push(
      `concurrency 1 (json, ${one.c[0].n} requests x 3): express + hpm p50 ${(lat('a', 'p50') / 1000).toFixed(3)} ms, p99 ${(lat('a', 'p99') / 1000).toFixed(3)} ms; ` +
        `gatehouse p50 ${(lat('c', 'p50') / 1000).toFixed(3)} ms, p99 ${(lat('c', 'p99') / 1000).toFixed(3)} ms; ` +
        `added p50 ${((lat('c', 'p50') - lat('a', 'p50')) / 1000).toFixed(3)} ms, p99 ${((lat('c', 'p99') - lat('a', 'p99')) / 1000).toFixed(3)} ms`,
    )
    const pacedUp = await startServer(['upstream-paced'])
    const paced = await startServer(['gateway', pacedUp.url, workdir + '-paced'])
    const gaps = await sseArrivalGaps(paced.url, paced.key)
    lines.push(`sse relay: upstream chunks 100 ms apart arrived ${gaps.join(', ')} ms apart at the client`)
    console.log(lines.join('\n'))
    // What the Redis-mode gateways left in Redis (their prefixes are their own).
    for (const t of Object.values(targets)) {
      if (!t.redisPrefix) continue
      const Redis = require('ioredis')
      const client = new Redis(t === targets.d ? process.env.BENCH_CLUSTER : process.env.BENCH_STORE_URL)
      const keys = await client.keys(`${t.redisPrefix}*`)
      if (keys.length) await client.del(...keys)
      client.disconnect()
    }
  } finally {
    killChildren() // the directories go with the exit handler above
  }
}

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130))

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
