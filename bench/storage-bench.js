'use strict'
// Request storage's cost: the gateway with storage off, with a reachable PostgreSQL, and with an
// unreachable one, against the same mock upstream, rotating the order between rounds.
// Usage: node bench/storage-bench.js   (needs PostgreSQL on 127.0.0.1:5432; BENCH_ROUNDS, BENCH_DURATION)
const { spawn, execFileSync } = require('node:child_process')
const { mkdtempSync, rmSync } = require('node:fs')
const { tmpdir } = require('node:os')
const path = require('node:path')
const autocannon = require('autocannon')
const { Client } = require('pg')

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const DURATION = Number(process.env.BENCH_DURATION ?? 5)
const children = []

function start(args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'servers.js'), ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } })
    children.push(child)
    let buf = ''
    const timer = setTimeout(() => reject(new Error(`${args[0]} did not start`)), 20000)
    child.stdout.on('data', (d) => {
      buf += d
      if (buf.includes('\n')) {
        clearTimeout(timer)
        resolve(JSON.parse(buf.split('\n')[0]))
      }
    })
  })
}

const run = (url, key) =>
  new Promise((resolve, reject) =>
    autocannon(
      { url: `${url}/v1/chat/completions`, method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }), connections: 32, duration: DURATION },
      (err, r) => (err ? reject(err) : resolve(r.requests.average)),
    ),
  )

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
    const up = await start(['upstream'])
    const targets = {
      off: await start(['gateway', up.url, path.join(work, 'off')]),
      on: await start(['gateway', up.url, path.join(work, 'on')], { BENCH_STORAGE_URL: url }),
      down: await start(['gateway', up.url, path.join(work, 'down')], { BENCH_STORAGE_URL: 'postgresql://postgres@127.0.0.1:1/none' }),
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
    for (const c of children) c.kill('SIGKILL')
    await new Promise((r) => setTimeout(r, 500))
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`)
    await admin.end()
    rmSync(work, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err)
  for (const c of children) c.kill('SIGKILL')
  process.exit(1)
})
