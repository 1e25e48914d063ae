'use strict'
// Request storage's cost: the gateway with storage off, with a reachable PostgreSQL, and with an
// unreachable one, against the same mock upstream, rotating the order between rounds.
// Usage: node bench/storage-bench.js   (needs PostgreSQL on 127.0.0.1:5432; BENCH_ROUNDS, BENCH_DURATION)
const { execFileSync } = require('node:child_process')
const { mkdtempSync, rmSync } = require('node:fs')
const { tmpdir } = require('node:os')
const path = require('node:path')
const { killChildren, load, startServer } = require('./children')
const { Client } = require('pg')

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const DURATION = Number(process.env.BENCH_DURATION ?? 5)

const run = async (url, key) =>
  (await load(`${url}/v1/chat/completions`, { 'x-api-key': key }, JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }), { duration: DURATION })).requests.average

async function main() {
  const db = `gh_bench_${process.pid}`
  const admin = new Client({ connectionString: 'postgresql://postgres@127.0.0.1:5432/postgres' })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${db}`)
  const url = `postgresql://postgres@127.0.0.1:5432/${db}`
  const work = mkdtempSync(path.join(tmpdir(), 'gh-sbench-'))
  const cfgDir = work
  require('node:fs').writeFileSync(path.join(cfgDir, 'c.yaml'), `storage: { enabled: true, url: "${url}" }\n`)
  execFileSync(process.execPath, [path.join(__dirname, '..', 'packages/server/dist/cli.js'), 'storage', 'migrate', '--config', 'c.yaml'], { cwd: cfgDir, stdio: 'ignore' })
  try {
    const up = await startServer(['upstream'])
    const targets = {
      off: await startServer(['gateway', up.url, path.join(work, 'off')]),
      on: await startServer(['gateway', up.url, path.join(work, 'on')], undefined, { BENCH_STORAGE_URL: url }),
      down: await startServer(['gateway', up.url, path.join(work, 'down')], undefined, { BENCH_STORAGE_URL: 'postgresql://postgres@127.0.0.1:1/none' }),
    }
    const results = { off: [], on: [], down: [] }
    const order = ['off', 'on', 'down']
    for (const t of order) await run(targets[t].url, targets[t].key)
    for (let round = 0; round < ROUNDS; round++) {
      for (const t of order.slice(round % 3).concat(order.slice(0, round % 3))) results[t].push(await run(targets[t].url, targets[t].key))
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
    const m = Object.fromEntries(order.map((t) => [t, median(results[t])]))
    console.log(`storage benchmark: ${ROUNDS} rounds x ${DURATION}s, JSON, 32 connections`)
    console.log(`storage off: ${m.off.toFixed(0)} req/s; on (PostgreSQL up): ${m.on.toFixed(0)} req/s (${(m.on / m.off).toFixed(2)}x); on (PostgreSQL unreachable): ${m.down.toFixed(0)} req/s (${(m.down / m.off).toFixed(2)}x)`)
  } finally {
    killChildren()
    await new Promise((r) => setTimeout(r, 500))
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`)
    await admin.end()
    rmSync(work, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1) // the children go with the exit handler of ./children
})
