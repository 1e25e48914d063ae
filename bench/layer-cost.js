'use strict'
// What each layer of the gateway costs: CPU time per request of the gateway with every layer on,
// against the same gateway with one layer off (BENCH_OFF, see servers.js), and bare express +
// http-proxy-middleware, measured from the processes' own CPU counters (/proc/<pid>/stat, Linux).
// Requests/s move with the machine; CPU per request of two processes measured a second apart moves
// much less, so each variant is paired with the all-on gateway round by round, and the median of
// those ratios is what a layer costs. Bounded: 8000 warm-up requests a process, then ROUNDS x 2 x
// AMOUNT requests for express and for each layer.
// Usage: npm run bench:layers   (env: BENCH_ROUNDS [11], BENCH_AMOUNT [1500], BENCH_KIND json|sse,
// BENCH_LAYERS=audit,keylimits,… to choose the layers)
const { mkdtempSync, readFileSync, rmSync } = require('node:fs')
const { tmpdir, availableParallelism } = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { killChildren, load, startServer } = require('./children')

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 11)
const AMOUNT = Number(process.env.BENCH_AMOUNT ?? 1500)
const KIND = process.env.BENCH_KIND ?? 'json'
const LAYERS = (process.env.BENCH_LAYERS ?? 'audit,metrics,alerts,ratelimit,headers,fingerprint,auth,keylimits,secrets').split(',').filter(Boolean)
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())

/** CPU time (user + system) a process has used, in µs. */
function cpuMicros(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLK_TCK
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function main() {
  if (process.platform !== 'linux') throw new Error('bench/layer-cost.js reads /proc: Linux only')
  const workdir = mkdtempSync(path.join(tmpdir(), 'gh-layers-'))
  process.on('exit', () => {
    killChildren()
    rmSync(workdir, { recursive: true, force: true })
  })
  // The targets on CPU 0, the mock upstream and the load (this process) on CPU 1, as BENCH_PIN=1 does.
  const pin = availableParallelism() >= 2
  if (pin) execFileSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' })
  const upstream = await startServer(['upstream'], pin ? '1' : undefined)
  const start = (mode, off, i) => startServer([mode, upstream.url, path.join(workdir, String(i))], pin ? '0' : undefined, { BENCH_OFF: off })
  const on = { name: 'every layer on', ...(await start('gateway', '', 0)) }
  const body = JSON.stringify({ model: 'gpt-4o-mini', ...(KIND === 'sse' ? { stream: true } : {}), messages: [{ role: 'user', content: 'hello' }] })
  const run = async (v, amount) => {
    const before = cpuMicros(v.pid)
    const r = await load(`${v.url}/v1/chat/completions`, v.key ? { 'x-api-key': v.key } : {}, body, { amount })
    if (r.non2xx > 0 || r.errors > 0) throw new Error(`${v.name}: ${r.non2xx} non-2xx, ${r.errors} errors`)
    return (cpuMicros(v.pid) - before) / amount
  }
  for (let w = 0; w < 4; w++) await run(on, 2000) // warm-up: JIT and connection pools
  const cost = new Map()
  const onMicros = []
  // One variant at a time beside the all-on gateway (and nothing else on its CPU): ten idle
  // gateways sharing the CPU skewed what each one was charged.
  const specs = [['express + hpm', 'express', ''], ...LAYERS.map((layer) => [`${layer} off`, 'gateway', layer])]
  for (const [i, [name, mode, off]] of specs.entries()) {
    const v = { name, ...(await start(mode, off, i + 1)) }
    // A new process keeps optimising its hot paths for thousands of requests: warmed until it is as
    // settled as the long-running all-on gateway (a shorter warm-up charged the later variants more).
    for (let w = 0; w < 4; w++) await run(v, 2000)
    const c = { ratios: [], micros: [] }
    for (let round = 0; round < ROUNDS; round++) {
      // Paired: the all-on gateway and the variant back to back, which goes first alternating.
      let b, x
      if (round % 2 === 0) {
        b = await run(on, AMOUNT)
        x = await run(v, AMOUNT)
      } else {
        x = await run(v, AMOUNT)
        b = await run(on, AMOUNT)
      }
      onMicros.push(b)
      c.ratios.push(x / b)
      c.micros.push(x)
    }
    cost.set(v, c)
    process.kill(v.pid, 'SIGKILL')
    process.stderr.write(`${name}: done\n`)
  }
  const lines = [
    `Gatehouse layer cost: ${KIND}, ${ROUNDS} rounds x ${AMOUNT} requests a target, 32 connections, ${pin ? 'targets on CPU 0, upstream and load on CPU 1' : 'not pinned'}, node ${process.version}`,
    `gateway, every layer on: ${median(onMicros).toFixed(0)} µs CPU a request (median)`,
    '| variant | µs CPU a request | of the all-on gateway (median of paired rounds) | the layer costs |',
    '| --- | ---: | ---: | ---: |',
  ]
  for (const [v, c] of cost) {
    const ratio = median(c.ratios)
    const share = v.name === 'express + hpm' ? '' : `${((1 - ratio) * 100).toFixed(1)}%`
    lines.push(`| ${v.name} | ${median(c.micros).toFixed(0)} | ${ratio.toFixed(3)} (${[...c.ratios].sort((a, b) => a - b).map((r) => r.toFixed(2)).join(' ')}) | ${share} |`)
  }
  console.log(lines.join('\n'))
  // The upstream and the all-on gateway still run, and their pipes keep this process alive: without
  // this it printed its table and never exited, leaving both behind for whatever ran next.
  killChildren()
}

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130))

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
