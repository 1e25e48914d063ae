'use strict'
// Gatehouse soak run: the gateway with every layer on, under a steady mixed load, watched for leaks.
//
//   npm run soak                      (builds, then about 60 s)
//   SOAK_SECONDS=20 node bench/soak.js
//   env: SOAK_SECONDS (total run time, default 60, at least 20), SOAK_CONNECTIONS (default 16),
//        SOAK_KEEP=1 (keep the temp dir, to look at the audit log after a failure)
//
// What it does, all on 127.0.0.1 and ephemeral ports:
//  1. starts the mock upstream (bench/servers.js upstream) and the gateway as an operator runs it:
//     `gatehouse --config FILE` in its own process, with the config of bench/servers.js's gateway
//     mode plus the layers that mode leaves off (global limit, per-provider request/token limits,
//     quotas, ip allow/deny lists), every limit far above the load. The real CLI rather than
//     servers.js, because the CLI's SIGTERM handling (drain, flush the audit log, exit 0) is part
//     of what is checked, and servers.js's gateway mode has none. The gateway runs with
//     --expose-gc and bench/soak-preload.js, which prints the heap after a full GC on SIGUSR2.
//  2. drives a mixed load over keep-alive connections: OpenAI and Anthropic JSON and SSE
//     requests, and refusals (no key, wrong key, key in the query string, oversized body sent
//     with Content-Length and chunked, malformed JSON, max_tokens above the cap), checking each
//     status (and body) against the documented one. A warm-up phase comes first; its end is the
//     baseline for the heap, fd and RSS-trend checks.
//  3. samples the gateway's RSS and open fds every second (/proc/<pid>/status, /proc/<pid>/fd),
//     and the heap after a forced GC after the warm-up and after the load.
//  4. stops the gateway with SIGTERM, expects exit 0 within its grace period, counts the
//     provider_request lines of its audit log against the responses received (per status too),
//     checks no client or provider key reached the log, and runs `gatehouse audit verify`.
// Prints a report and exits 1 on any failed check. Children are SIGKILLed and the temp dir removed
// on every exit path.
const { spawn, execFile, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const { randomBytes } = require('node:crypto')
const { setInterval, clearInterval } = require('node:timers')
const { Buffer } = require('node:buffer')

const root = path.join(__dirname, '..')
const cliPath = path.join(root, 'packages', 'server', 'dist', 'cli.js')
const preloadPath = path.join(__dirname, 'soak-preload.js')

const SOAK_SECONDS = Number(process.env.SOAK_SECONDS ?? 60)
const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? 16)
const KEEP = process.env.SOAK_KEEP === '1'
// Time kept back at the end of SOAK_SECONDS for settling, the last GC, shutdown and verification.
const RESERVE_MS = 4000
// Warm-up: a tenth of the run, 2-10 s, less when start-up (two cold starts of the CLI, a few seconds
// each on a busy machine) has eaten into SOAK_SECONDS. The load gets what is left, at least 3 s.
const WARMUP_MS = Math.min(10, Math.max(2, Math.round(SOAK_SECONDS / 10))) * 1000
const MIN_WARMUP_MS = 1000
const MIN_LOAD_MS = 3000
const BASELINE_MS = 2000 // settling and the GC after the warm-up
const GRACE_S = 10 // server.timeouts.shutdown_grace
const BODY_LIMIT = 256 * 1024 // server.body_limit; the valid bodies are ~200 bytes
const REQUEST_TIMEOUT_MS = 10_000
const MAX_REQUESTS = 5_000_000 // per phase, on top of the time bound
const MAX_TOKENS_CAP = 4096

// Pass/fail bounds.
// fds: compared with the count after the warm-up, once the client's connections are closed: by then
// the gateway's upstream keep-alive pools (at most one socket per concurrent request and provider)
// exist, so what is left is growth during the load. 20 leaves room for pool churn.
const FD_GROWTH_MAX = 20
// RSS: compared with the idle gateway before any load (~120 MB here, most of it code: requiring
// @gatehouse/server alone is ~110 MB). A gateway that leaks nothing may still end well above its
// start: V8's young generation grows to its maximum under load (up to 3 x 16 MB semi-spaces), old
// space keeps room it grew into, and glibc keeps freed malloc arenas (one per thread: main, libuv
// pool, V8 workers) mapped; on this machine it ended within 5 MB of the start, peaking ~10 MB above.
// 150 MB leaves room for that on other machines and longer runs, and still fails a native leak of
// ~3 KB a request at the ~50k requests a default run sends here (~1000 req/s on 2 cores). The
// heap-after-GC check below is the sharp one for JS leaks.
const RSS_GROWTH_MAX_MB = 150
// Heap after a full GC, end of load vs. after the warm-up: 30 MB at ~50k requests is ~600 bytes a
// request, less than any per-request object (a request, a response, an event) kept by mistake.
const HEAP_GROWTH_MAX_MB = 30

const { children, startServer } = require('./children')
let workdir
let cleanedUp = false

const T_START = Date.now()
const log = (s) => process.stderr.write(`soak: [${((Date.now() - T_START) / 1000).toFixed(1)} s] ${s}\n`)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const mb = (bytes) => (bytes / 1048576).toFixed(1)

function cleanup() {
  if (cleanedUp) return
  cleanedUp = true
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  if (workdir) {
    if (KEEP) log(`kept ${workdir}`)
    else fs.rmSync(workdir, { recursive: true, force: true })
  }
}
process.on('exit', cleanup)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    log(`${sig}: stopping`)
    cleanup()
    process.exit(130)
  })
}

function ensureBuilt() {
  if (!fs.existsSync(cliPath)) {
    log('packages/server/dist is missing: npx tsc -b')
    execFileSync('npx', ['tsc', '-b'], { cwd: root, stdio: 'inherit', timeout: 600_000 })
  }
}


/** The CLI, run to completion, with a clean environment (no provider keys or overrides from ours). */
function runCli(args, timeout = 60_000) {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliPath, ...args],
      { cwd: workdir, env: { PATH: process.env.PATH }, timeout },
      (err, stdout, stderr) => {
        resolve({
          code: err ? (typeof err.code === 'number' ? err.code : 1) : 0,
          signal: err?.signal ?? null,
          stdout,
          stderr,
        })
      },
    )
  })
}

function writeConfig(file, upstreamUrl, providerKeys) {
  const limits =
    'rate_limit: { requests_per_minute: 1000000000, tokens_per_minute: 1000000000000 }, quota: { limit: 1000000000000000, reset: monthly }'
  const provider = (p) =>
    `  ${p}: { enabled: true, base_url: "${upstreamUrl}", api_key: "${providerKeys[p]}", max_tokens: ${MAX_TOKENS_CAP}, ${limits} }`
  fs.writeFileSync(
    file,
    `# Written by bench/soak.js: bench/servers.js's gateway mode, with every other layer on and its limits far above the load.
server:
  host: 127.0.0.1
  port: 0
  body_limit: ${BODY_LIMIT}
  timeouts: { shutdown_grace: ${GRACE_S}s }
  security:
    ip_allowlist: { enabled: true, allowed_ips: ["127.0.0.1", "::1"] }
    ip_denylist: { enabled: true, denied_ips: ["203.0.113.0/24"] }
    rate_limiting: { enabled: true, requests_per_second: 1000000, burst: 1000000, per_ip: true }
  rate_limit: { enabled: true, requests_per_second: 1000000, burst: 1000000 }
auth:
  dir: ${JSON.stringify(path.join(workdir, 'auths'))}
logging:
  level: info
  # aggregate_interval 0: every refusal its own line, so the lines can be counted against the responses
  audit: { enabled: true, file: ${JSON.stringify(path.join(workdir, 'logs', 'audit.log'))}, aggregate_interval: 0 }
metrics: { enabled: true, host: 127.0.0.1, port: 0 }
device_fingerprint: { enabled: true }
providers:
${['claude', 'openai', 'gemini'].map(provider).join('\n')}
`,
    { mode: 0o600 },
  )
}

/** The gateway: `gatehouse --config FILE` under --expose-gc and the GC preload. */
function startGateway(configFile) {
  const child = spawn(process.execPath, ['--expose-gc', '-r', preloadPath, cliPath, '--config', configFile], {
    cwd: workdir,
    env: { PATH: process.env.PATH },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.add(child)
  const gw = {
    child,
    pid: child.pid,
    url: undefined,
    logs: { info: 0, warn: 0, error: 0, other: 0 },
    errorLines: [],
    heapWaiters: [],
    exit: new Promise((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
    ),
  }
  const onLine = (line) => {
    if (!line) return
    let entry
    try {
      entry = JSON.parse(line)
    } catch {
      gw.logs.other++
      if (gw.errorLines.length < 5) gw.errorLines.push(line.slice(0, 300))
      return
    }
    if (entry.soak_heap) {
      for (const w of gw.heapWaiters.splice(0)) w(entry.soak_heap)
      return
    }
    const level = entry.level in gw.logs ? entry.level : 'other'
    gw.logs[level]++
    if ((level === 'error' || level === 'other') && gw.errorLines.length < 5)
      gw.errorLines.push(line.slice(0, 300))
    if (entry.message === 'gatehouse listening' && !gw.url) gw.onListening?.(entry.url)
  }
  for (const stream of [child.stdout, child.stderr]) {
    let buf = ''
    stream.on('data', (d) => {
      buf += d
      let nl
      while ((nl = buf.indexOf('\n')) !== -1) {
        onLine(buf.slice(0, nl))
        buf = buf.slice(nl + 1)
      }
      if (buf.length > 1_000_000) buf = '' // a runaway line; never grow without bound
    })
  }
  gw.ready = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`gateway did not start in 20 s: ${gw.errorLines.join('\n')}`)),
      20_000,
    )
    gw.onListening = (url) => {
      clearTimeout(timer)
      gw.url = url
      resolve(url)
    }
    void gw.exit.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(new Error(`gateway exited (${code ?? signal}) before listening: ${gw.errorLines.join('\n')}`))
    })
  })
  return gw
}

/** Heap after a full GC in the gateway (SIGUSR2 to the preload); undefined after 10 s or if it exits. */
function heapAfterGc(gw) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), 10_000)
    const done = (info) => {
      clearTimeout(timer)
      resolve(info?.error ? undefined : info)
    }
    gw.heapWaiters.push(done)
    void gw.exit.then(() => done(undefined))
    if (gw.child.exitCode === null && gw.child.signalCode === null) gw.child.kill('SIGUSR2')
  })
}

/** RSS (VmRSS, VmHWM) and open fds of a process, or undefined once it is gone. */
function sampleProcess(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024
    return {
      t: Date.now(),
      rss: kb('VmRSS'),
      hwm: kb('VmHWM'),
      fds: fs.readdirSync(`/proc/${pid}/fd`).length,
    }
  } catch {
    return undefined
  }
}

/** Wait until the gateway's fd count stops changing (client sockets closed), at most 5 s. */
async function settledSample(pid) {
  let last = sampleProcess(pid)
  let stableFor = 0
  for (let i = 0; i < 25 && stableFor < 3; i++) {
    await sleep(200)
    const s = sampleProcess(pid)
    if (!s) return last
    stableFor = s.fds === last?.fds ? stableFor + 1 : 0
    last = s
  }
  return last
}

// ---------------------------------------------------------------------------------------------
// The load: what each kind of request sends and what it must get back.

const openaiBody = (extra = {}) =>
  JSON.stringify({
    model: 'gpt-4o-mini',
    max_tokens: 64,
    messages: [{ role: 'user', content: 'hello' }],
    ...extra,
  })
const anthropicBody = (extra = {}) =>
  JSON.stringify({
    model: 'claude-sonnet-4-5',
    max_tokens: 64,
    messages: [{ role: 'user', content: 'hello' }],
    ...extra,
  })
const parses = (body, test) => {
  try {
    return test(JSON.parse(body))
  } catch {
    return false
  }
}
// Every refusal is in the provider's error shape: OpenAI {error:{…}}, Anthropic {type:'error', error:{…}}.
const isProviderError = (res) =>
  parses(res.body, (j) => j !== null && typeof j.error === 'object' && j.error !== null)

function requestKinds(key) {
  const bearer = { authorization: `Bearer ${key}` }
  const xkey = { 'x-api-key': key, 'anthropic-version': '2023-06-01' }
  const json = { 'content-type': 'application/json' }
  // Not a honeytoken (those get the caller denylisted): a well-formed key nobody was given.
  const wrongKey = `gate_live_${randomBytes(32).toString('base64url')}`
  const oversized = Buffer.alloc(BODY_LIMIT + 1024, 'a')
  oversized.write('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"')
  oversized.write('"}]}', oversized.length - 4)
  const sse = (res) => /^text\/event-stream/.test(res.headers['content-type'] ?? '')
  return {
    openai_json: {
      weight: 6,
      path: '/v1/chat/completions',
      headers: { ...json, ...bearer },
      body: openaiBody(),
      status: 200,
      check: (res) => parses(res.body, (j) => Array.isArray(j.choices) && j.choices.length > 0),
    },
    anthropic_json: {
      weight: 5,
      path: '/v1/messages',
      headers: { ...json, ...xkey },
      body: anthropicBody(),
      status: 200,
      check: (res) => parses(res.body, (j) => j.type === 'message' && Array.isArray(j.content)),
    },
    openai_sse: {
      weight: 3,
      path: '/v1/chat/completions',
      headers: { ...json, ...bearer },
      body: openaiBody({ stream: true, stream_options: { include_usage: true } }),
      status: 200,
      check: (res) => sse(res) && res.body.includes('data: [DONE]'),
    },
    anthropic_sse: {
      weight: 3,
      path: '/v1/messages',
      headers: { ...json, ...xkey },
      body: anthropicBody({ stream: true }),
      status: 200,
      check: (res) => sse(res) && res.body.includes('event: message_stop'),
    },
    // client-auth: 401 with WWW-Authenticate: Bearer for a missing or unknown key.
    no_key: {
      weight: 1,
      path: '/v1/chat/completions',
      headers: json,
      body: openaiBody(),
      status: 401,
      check: (res) => isProviderError(res) && res.headers['www-authenticate'] === 'Bearer',
    },
    wrong_key: {
      weight: 1,
      path: '/v1/messages',
      headers: { ...json, 'x-api-key': wrongKey },
      body: anthropicBody(),
      status: 401,
      check: (res) => isProviderError(res) && res.headers['www-authenticate'] === 'Bearer',
    },
    // client-auth: a key in the query string is refused with 400, whatever the key.
    query_key: {
      weight: 1,
      path: `/v1/chat/completions?api_key=${key}`,
      headers: json,
      body: openaiBody(),
      status: 400,
      check: isProviderError,
    },
    // request-guard: 413 on the declared Content-Length (nothing is read) ...
    oversized: {
      weight: 1,
      path: '/v1/chat/completions',
      headers: { ...json, ...bearer },
      body: oversized,
      status: 413,
      check: isProviderError,
    },
    // ... and on the bytes counted while a chunked body streams in.
    oversized_chunked: {
      weight: 1,
      path: '/v1/messages',
      headers: { ...json, ...xkey },
      chunks: Array.from({ length: Math.ceil(oversized.length / 16384) }, (_, i) =>
        oversized.subarray(i * 16384, (i + 1) * 16384),
      ),
      status: 413,
      check: isProviderError,
    },
    // request-guard: not valid JSON, 400.
    malformed_json: {
      weight: 1,
      path: '/v1/chat/completions',
      headers: { ...json, ...bearer },
      body: '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}',
      status: 400,
      check: isProviderError,
    },
    // request-guard: max_tokens above the provider's cap, 400 (onOverCap 'reject', the gateway's).
    max_tokens_over: {
      weight: 1,
      path: '/v1/messages',
      headers: { ...json, ...xkey },
      body: anthropicBody({ max_tokens: MAX_TOKENS_CAP * 25 }),
      status: 400,
      check: (res) => isProviderError(res) && res.body.includes('max_tokens'),
    },
  }
}

/** A fixed, shuffled rotation of kinds by weight (a seeded shuffle, so every run sends the same mix). */
function schedule(kinds) {
  const list = Object.entries(kinds).flatMap(([name, k]) => Array(k.weight).fill(name))
  let seed = 42
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[list[i], list[j]] = [list[j], list[i]]
  }
  return list
}

/** One request; resolves with the status (undefined when no response came) and the body. */
function send(base, agent, kind) {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint()
    let settled = false
    let response
    let body = ''
    const finish = (error) => {
      if (settled) return
      settled = true
      const ms = Number(process.hrtime.bigint() - started) / 1e6
      resolve({ status: response?.statusCode, headers: response?.headers ?? {}, body, ms, error })
    }
    const headers = { ...kind.headers }
    if (kind.body !== undefined) headers['content-length'] = Buffer.byteLength(kind.body)
    const req = http.request(
      { host: base.hostname, port: base.port, method: 'POST', path: kind.path, headers, agent },
      (res) => {
        response = res
        res.setEncoding('utf8')
        res.on('data', (d) => {
          if (body.length < 65536) body += d
        })
        res.on('end', () => finish())
        // The gateway may close a refused request's connection (413, Connection: close) while we
        // still write: the answer came, which is what counts.
        res.on('aborted', () => finish('response aborted'))
        res.on('error', (e) => finish(`response ${e.code ?? e.message}`))
      },
    )
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error('timeout')))
    req.on('error', (e) => {
      if (!response) finish(e.code ?? e.message)
    })
    if (kind.chunks) {
      for (const c of kind.chunks) if (!req.destroyed) req.write(c)
      req.end()
    } else req.end(kind.body)
  })
}

function newStats(kinds) {
  return Object.fromEntries(
    Object.keys(kinds).map((k) => [
      k,
      {
        sent: 0,
        statuses: {},
        unexpected: 0,
        badBody: 0,
        errors: {},
        histogram: new Uint32Array(REQUEST_TIMEOUT_MS + 1),
        totalMs: 0,
      },
    ]),
  )
}

/** CONNECTIONS workers, each sending one request after the other until `untilMs`. */
async function runLoad(base, kinds, order, stats, untilMs, state) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS })
  let count = 0
  const worker = async (w) => {
    let i = w * 7
    while (Date.now() < untilMs && count < MAX_REQUESTS && !state.abort) {
      count++
      const name = order[i++ % order.length]
      const kind = kinds[name]
      const s = stats[name]
      s.sent++
      const r = await send(base, agent, kind)
      s.totalMs += r.ms
      s.histogram[Math.min(REQUEST_TIMEOUT_MS, Math.round(r.ms))]++
      if (r.status === undefined) {
        s.errors[r.error] = (s.errors[r.error] ?? 0) + 1
        if (Object.keys(state.errorSamples).length < 10) state.errorSamples[`${name}: ${r.error}`] = true
        continue
      }
      state.responses++
      state.byStatus[r.status] = (state.byStatus[r.status] ?? 0) + 1
      s.statuses[r.status] = (s.statuses[r.status] ?? 0) + 1
      if (r.status !== kind.status) {
        s.unexpected++
        if (state.unexpectedSamples.length < 5)
          state.unexpectedSamples.push(`${name}: ${r.status} ${r.body.slice(0, 200)}`)
      } else if (r.error || !kind.check(r)) {
        s.badBody++
        if (state.unexpectedSamples.length < 5)
          state.unexpectedSamples.push(
            `${name}: ${r.status} bad body${r.error ? ` (${r.error})` : ''}: ${r.body.slice(0, 200)}`,
          )
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: CONNECTIONS }, (_, w) => worker(w)))
  } finally {
    agent.destroy()
  }
  return count
}

const percentile = (hist, total, p) => {
  let seen = 0
  for (let ms = 0; ms < hist.length; ms++) {
    seen += hist[ms]
    if (seen >= total * p) return ms
  }
  return hist.length - 1
}

/** The audit log's lines (rotated files first), parsed; unparsable lines counted. */
function readAudit(activeFile) {
  const dir = path.dirname(activeFile)
  const stem = path.basename(activeFile, '.log')
  const files = fs
    .readdirSync(dir)
    .filter((n) => n.startsWith(`${stem}.`) && n.endsWith('.log') && n !== path.basename(activeFile))
    .sort()
    .map((n) => path.join(dir, n))
  if (fs.existsSync(activeFile)) files.push(activeFile)
  const out = {
    files: files.length,
    lines: 0,
    unparsable: 0,
    byType: {},
    requestsByStatus: {},
    aborted: 0,
    text: [],
  }
  for (const f of files) {
    const text = fs.readFileSync(f, 'utf8')
    out.text.push(text)
    for (const line of text.split('\n')) {
      if (!line) continue
      out.lines++
      let e
      try {
        e = JSON.parse(line)
      } catch {
        out.unparsable++
        continue
      }
      out.byType[e.event_type] = (out.byType[e.event_type] ?? 0) + 1
      if (e.event_type === 'provider_request') {
        const st = e.details?.status
        out.requestsByStatus[st] = (out.requestsByStatus[st] ?? 0) + 1
        if (e.result === 'aborted') out.aborted++
      }
    }
  }
  return out
}

/** Least-squares slope of RSS over time, MB per minute. */
function rssTrend(samples) {
  if (samples.length < 5) return undefined
  const t0 = samples[0].t
  const xs = samples.map((s) => (s.t - t0) / 60000)
  const ys = samples.map((s) => s.rss / 1048576)
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length
  const my = ys.reduce((a, b) => a + b, 0) / ys.length
  let num = 0
  let den = 0
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i] - mx) * (ys[i] - my)
    den += (xs[i] - mx) ** 2
  }
  return den ? num / den : undefined
}

/** The soak: start everything, warm up, take the baseline, load, then stop and check; a report and an exit code. */
async function main() {
  if (!Number.isFinite(SOAK_SECONDS) || SOAK_SECONDS < 20 || SOAK_SECONDS > 86400)
    throw new Error(`SOAK_SECONDS must be 20..86400 (got ${process.env.SOAK_SECONDS})`)
  if (!Number.isInteger(CONNECTIONS) || CONNECTIONS < 1 || CONNECTIONS > 256)
    throw new Error(`SOAK_CONNECTIONS must be 1..256 (got ${process.env.SOAK_CONNECTIONS})`)
  const t0 = Date.now()
  const endAt = t0 + SOAK_SECONDS * 1000
  // Last resort: whatever hangs, the run ends (cleanup runs on exit).
  setTimeout(
    () => {
      log('watchdog: the run overran SOAK_SECONDS + 60 s; killing everything')
      process.exit(1)
    },
    SOAK_SECONDS * 1000 + 60_000,
  ).unref()

  ensureBuilt()
  workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-soak-'))
  const upstream = await startServer(['upstream'])
  const providerKeys = Object.fromEntries(
    ['claude', 'openai', 'gemini'].map((p) => [p, `soak-${p}-key-${randomBytes(12).toString('hex')}`]),
  )
  const configFile = path.join(workdir, 'gatehouse.yaml')
  writeConfig(configFile, upstream.url, providerKeys)
  const created = await runCli(['keys', 'create', '--name', 'soak', '--config', configFile])
  const key = created.stdout.trim()
  if (created.code !== 0 || !key.startsWith('gate_live_'))
    throw new Error(`keys create failed (${created.code}): ${created.stderr}`)

  const gw = startGateway(configFile)
  await gw.ready
  const base = new URL(gw.url)
  log(`gateway pid ${gw.pid} at ${gw.url}, upstream ${upstream.url}`)

  const samples = []
  const phaseOf = { current: 'start' }
  const sample = () => {
    const s = sampleProcess(gw.pid)
    if (s) samples.push({ ...s, phase: phaseOf.current })
  }
  await sleep(500)
  sample()
  const startSample = samples[0]
  if (!startSample) throw new Error(`cannot read /proc/${gw.pid}: the gateway is gone`)
  const heapStart = await heapAfterGc(gw)
  const sampler = setInterval(sample, 1000)

  const kinds = requestKinds(key)
  const order = schedule(kinds)
  const stats = newStats(kinds)
  const state = { abort: false, responses: 0, byStatus: {}, errorSamples: {}, unexpectedSamples: [] }
  let gatewayExitedEarly
  void gw.exit.then((e) => {
    if (!state.stopping) {
      gatewayExitedEarly = e
      state.abort = true
    }
  })

  // Warm-up: JIT, connection pools, the limiters' and stores' first entries.
  phaseOf.current = 'warmup'
  const left = endAt - RESERVE_MS - BASELINE_MS - Date.now()
  const warmupPlanned = Math.max(MIN_WARMUP_MS, Math.min(WARMUP_MS, Math.floor(left / 5)))
  log(`warm-up ${(warmupPlanned / 1000).toFixed(1)} s, ${CONNECTIONS} connections`)
  const warmupStart = Date.now()
  await runLoad(base, kinds, order, stats, warmupStart + warmupPlanned, state)
  const warmupMs = Date.now() - warmupStart
  if (state.abort)
    throw new Error(
      `the gateway exited during the warm-up (${gatewayExitedEarly?.code ?? gatewayExitedEarly?.signal})`,
    )
  phaseOf.current = 'baseline'
  const baseline = (await settledSample(gw.pid)) ?? samples[samples.length - 1]
  const heapBase = await heapAfterGc(gw)
  log('baseline taken')

  const loadStart = Date.now()
  const loadUntil = Math.max(endAt - RESERVE_MS, loadStart + MIN_LOAD_MS)
  if (loadUntil > endAt - RESERVE_MS)
    log(
      `start-up was slow: the run will overrun SOAK_SECONDS by about ${((loadUntil - (endAt - RESERVE_MS)) / 1000).toFixed(1)} s`,
    )
  phaseOf.current = 'load'
  log(`load ${((loadUntil - loadStart) / 1000).toFixed(0)} s`)
  const loadSamplesFrom = samples.length
  await runLoad(base, kinds, order, stats, loadUntil, state)
  const loadMs = Date.now() - loadStart
  const loadSamples = samples.slice(loadSamplesFrom).filter((s) => s.phase === 'load')

  phaseOf.current = 'after'
  // The last sample stands in if the gateway is gone (the run fails on that anyway).
  const after = (await settledSample(gw.pid)) ?? samples[samples.length - 1]
  const heapEnd = await heapAfterGc(gw)
  sample()
  clearInterval(sampler)

  // SIGTERM: drain, flush the audit log, exit 0 within the grace period.
  state.stopping = true
  const termAt = Date.now()
  const alreadyGone = gw.child.exitCode !== null || gw.child.signalCode !== null
  if (!alreadyGone) gw.child.kill('SIGTERM')
  const exit = await Promise.race([gw.exit, sleep((GRACE_S + 5) * 1000).then(() => undefined)])
  const shutdown = exit ? { ...exit, ms: exit.at - termAt } : { code: null, signal: null, ms: undefined }
  if (!exit) gw.child.kill('SIGKILL')

  const audit = readAudit(path.join(workdir, 'logs', 'audit.log'))
  const auditText = audit.text.join('')
  const leakedKeys = [
    ['client key', key],
    ...Object.entries(providerKeys).map(([p, k]) => [`${p} provider key`, k]),
  ]
    .filter(([, k]) => auditText.includes(k))
    .map(([n]) => n)
  const verify = await runCli([
    'audit',
    'verify',
    path.join(workdir, 'logs', 'audit.log'),
    '--config',
    configFile,
  ])

  const r = { t0, warmupStart, warmupMs, loadMs, kinds, stats, state, gatewayExitedEarly, samples, startSample, baseline, after, loadSamples, heapStart, heapBase, heapEnd, audit, leakedKeys, verify, exit, shutdown, alreadyGone, gw }
  const failures = []
  const lines = []
  reportRequests(r, lines, failures)
  reportMemory(r, lines, failures)
  reportAudit(r, lines, failures)
  reportShutdown(r, lines, failures)
  lines.push('')
  lines.push(
    failures.length
      ? `FAIL (${((Date.now() - t0) / 1000).toFixed(1)} s):\n${failures.map((f) => `  - ${f}`).join('\n')}`
      : `PASS (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
  )
  console.log(lines.join('\n'))
  return failures.length ? 1 : 0
}


/** The requests sent, by kind, against the statuses and bodies expected. */
function reportRequests(r, lines, failures) {
  const { t0, warmupStart, warmupMs, loadMs, kinds, stats, state, gatewayExitedEarly } = r
  const totalSent = Object.values(stats).reduce((a, s) => a + s.sent, 0)
  const totalErrors = Object.values(stats).reduce(
    (a, s) => a + Object.values(s.errors).reduce((x, y) => x + y, 0),
    0,
  )
  const totalUnexpected = Object.values(stats).reduce((a, s) => a + s.unexpected, 0)
  const totalBadBody = Object.values(stats).reduce((a, s) => a + s.badBody, 0)
  lines.push(
    `Gatehouse soak: ${SOAK_SECONDS} s (start-up ${((warmupStart - t0) / 1000).toFixed(1)} s, warm-up ${(warmupMs / 1000).toFixed(1)} s, load ${(loadMs / 1000).toFixed(1)} s), ${CONNECTIONS} connections, node ${process.version}`,
  )
  lines.push('')
  lines.push('| kind | expect | sent | statuses | unexpected | bad body | errors | mean ms | p99 ms |')
  lines.push('| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |')
  for (const [name, s] of Object.entries(stats)) {
    const st =
      Object.entries(s.statuses)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ') || '-'
    const errs = Object.values(s.errors).reduce((a, b) => a + b, 0)
    const mean = s.sent ? (s.totalMs / s.sent).toFixed(1) : '-'
    lines.push(
      `| ${name} | ${kinds[name].status} | ${s.sent} | ${st} | ${s.unexpected} | ${s.badBody} | ${errs} | ${mean} | ${s.sent ? percentile(s.histogram, s.sent, 0.99) : '-'} |`,
    )
  }
  lines.push(
    `total: ${totalSent} requests, ${state.responses} responses (${((totalSent * 1000) / (loadMs + warmupMs)).toFixed(0)} req/s), ${totalUnexpected} unexpected statuses, ${totalBadBody} bad bodies, ${totalErrors} errors without a response`,
  )
  for (const u of state.unexpectedSamples) lines.push(`  unexpected: ${u}`)
  for (const e of Object.keys(state.errorSamples)) lines.push(`  error: ${e}`)
  if (totalUnexpected) failures.push(`${totalUnexpected} unexpected statuses`)
  if (totalBadBody)
    failures.push(`${totalBadBody} responses with the expected status but not the expected body`)
  if (totalErrors) failures.push(`${totalErrors} requests got no response`)
  if (gatewayExitedEarly)
    failures.push(
      `the gateway exited during the load (${gatewayExitedEarly.code ?? gatewayExitedEarly.signal})`,
    )

}

/** RSS, open fds and the heap after GC, against their bounds. */
function reportMemory(r, lines, failures) {
  const { samples, startSample, baseline, after, loadSamples, heapStart, heapBase, heapEnd } = r
  const peak = samples.reduce((a, s) => Math.max(a, s.rss), 0)
  const hwm = samples.reduce((a, s) => Math.max(a, s.hwm || 0), 0)
  const endSample = samples[samples.length - 1]
  const rssGrowth = endSample.rss - startSample.rss
  const trend = rssTrend(loadSamples)
  lines.push('')
  lines.push(
    `gateway RSS: start ${mb(startSample.rss)} MB, after warm-up ${mb(baseline.rss)} MB, peak ${mb(peak)} MB (VmHWM ${mb(hwm)} MB), end ${mb(endSample.rss)} MB ` +
      `(${rssGrowth >= 0 ? '+' : ''}${mb(rssGrowth)} MB over start, bound ${RSS_GROWTH_MAX_MB}); trend during load ${trend === undefined ? '-' : `${trend >= 0 ? '+' : ''}${trend.toFixed(1)} MB/min`} over ${loadSamples.length} samples`,
  )
  if (rssGrowth > RSS_GROWTH_MAX_MB * 1048576)
    failures.push(`RSS grew ${mb(rssGrowth)} MB (bound ${RSS_GROWTH_MAX_MB} MB)`)
  const fdGrowth = after.fds - baseline.fds
  lines.push(
    `gateway fds: start ${startSample.fds}, after warm-up ${baseline.fds}, peak ${samples.reduce((a, s) => Math.max(a, s.fds), 0)}, end ${after.fds} (${fdGrowth >= 0 ? '+' : ''}${fdGrowth} over warm-up, bound ${FD_GROWTH_MAX})`,
  )
  if (fdGrowth > FD_GROWTH_MAX) failures.push(`open fds grew by ${fdGrowth} (bound ${FD_GROWTH_MAX})`)
  if (heapBase && heapEnd) {
    const heapGrowth = heapEnd.heapUsed - heapBase.heapUsed
    lines.push(
      `heap after GC: idle start ${heapStart ? mb(heapStart.heapUsed) : '-'} MB, after warm-up ${mb(heapBase.heapUsed)} MB, end ${mb(heapEnd.heapUsed)} MB (${heapGrowth >= 0 ? '+' : ''}${mb(heapGrowth)} MB, bound ${HEAP_GROWTH_MAX_MB}); ` +
        `external ${mb(heapBase.external)} -> ${mb(heapEnd.external)} MB, arrayBuffers ${mb(heapBase.arrayBuffers)} -> ${mb(heapEnd.arrayBuffers)} MB`,
    )
    const res = (r) =>
      Object.entries(r)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')
    lines.push(
      `active resources after warm-up: ${res(heapBase.resources)}; after load: ${res(heapEnd.resources)}`,
    )
    if (heapGrowth > HEAP_GROWTH_MAX_MB * 1048576)
      failures.push(`heap after GC grew ${mb(heapGrowth)} MB (bound ${HEAP_GROWTH_MAX_MB} MB)`)
  } else {
    lines.push('heap after GC: not available (the preload did not answer SIGUSR2)')
    failures.push('no heap measurement')
  }

}

/** The audit log: one provider_request line per response, no key in it, the chain verified. */
function reportAudit(r, lines, failures) {
  const { audit, state, leakedKeys, verify } = r
  lines.push('')
  const logged = audit.byType.provider_request ?? 0
  lines.push(
    `audit log: ${audit.lines} lines in ${audit.files} file(s): ${Object.entries(audit.byType)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}${audit.unparsable ? `, ${audit.unparsable} unparsable` : ''}`,
  )
  lines.push(
    `provider_request lines ${logged} vs responses ${state.responses}${logged === state.responses ? ' (equal)' : ' (DIFFERENT)'}`,
  )
  const statuses = [
    ...new Set([...Object.keys(audit.requestsByStatus), ...Object.keys(state.byStatus)]),
  ].sort()
  const perStatus = statuses.map((s) => `${s}: ${audit.requestsByStatus[s] ?? 0}/${state.byStatus[s] ?? 0}`)
  lines.push(`  per status (logged/received): ${perStatus.join(', ')}; logged as aborted: ${audit.aborted}`)
  if (logged !== state.responses)
    failures.push(`${logged} provider_request lines for ${state.responses} responses`)
  else if (statuses.some((s) => (audit.requestsByStatus[s] ?? 0) !== (state.byStatus[s] ?? 0)))
    failures.push('provider_request statuses differ from the statuses received')
  if (audit.unparsable) failures.push(`${audit.unparsable} audit lines are not JSON`)
  lines.push(`keys in the audit log: ${leakedKeys.length ? leakedKeys.join(', ') : 'none'}`)
  if (leakedKeys.length) failures.push(`the audit log contains the ${leakedKeys.join(', ')}`)
  lines.push(`audit verify: exit ${verify.code}: ${(verify.stdout + verify.stderr).trim()}`)
  if (verify.code !== 0) failures.push('audit verify failed')

}

/** SIGTERM: exit 0 within the grace period; what the gateway logged. */
function reportShutdown(r, lines, failures) {
  const { alreadyGone, exit, shutdown, gw } = r
  lines.push(
    `shutdown: SIGTERM -> ${alreadyGone ? `none sent: the gateway had already exited (${exit.code ?? exit.signal})` : exit ? `exit ${shutdown.code ?? `signal ${shutdown.signal}`} in ${shutdown.ms} ms` : `still running after ${GRACE_S + 5} s (SIGKILLed)`} (grace ${GRACE_S} s)`,
  )
  if (!exit || shutdown.code !== 0)
    failures.push('the gateway did not exit 0 on SIGTERM within its grace period')
  else if (shutdown.ms > GRACE_S * 1000)
    failures.push(`the gateway took ${shutdown.ms} ms to stop (grace ${GRACE_S} s)`)
  lines.push(
    `gateway log: ${gw.logs.info} info, ${gw.logs.warn} warn, ${gw.logs.error} error, ${gw.logs.other} non-JSON lines`,
  )
  for (const l of gw.errorLines) lines.push(`  ${l}`)

}

main()
  .then((code) => {
    cleanup()
    process.exit(code)
  })
  .catch((err) => {
    console.error(err)
    cleanup()
    process.exit(1)
  })
