#!/usr/bin/env node
/*
 * Secret-scan throughput: generates a tree of source-like files (100 MB by default) in a temp
 * directory, with fake credentials planted at run time, then scans it
 *   1. with scanSecrets() in this process,
 *   2. with the gatehouse-check CLI as a child process (start-up included),
 *   3. with secretlint and @secretlint/secretlint-rule-preset-recommend as a child process,
 * and prints MB/s for each. Every run is bounded in time; the tree is removed at the end.
 *
 *   npm run bench                       (in packages/security-check)
 *   GH_BENCH_MB=20 npm run bench        smaller tree
 *   GH_BENCH_TIMEOUT_S=120 npm run bench  per-tool time limit (default 300 s)
 */
'use strict'

const { spawnSync } = require('node:child_process')
const { Buffer } = require('node:buffer')
const { randomBytes } = require('node:crypto')
const { performance } = require('node:perf_hooks')
const { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } = require('node:fs')
const { cpus, loadavg, tmpdir } = require('node:os')
const { dirname, join } = require('node:path')

const PKG = join(__dirname, '..')
const TARGET_MB = Number(process.env.GH_BENCH_MB || 100)
const TIMEOUT_MS = Number(process.env.GH_BENCH_TIMEOUT_S || 300) * 1000
const FILE_BYTES = 64 * 1024

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
const HEX = '0123456789abcdef'
function rand(charset, n) {
  const bytes = randomBytes(n)
  let out = ''
  for (let i = 0; i < n; i++) out += charset[bytes[i] % charset.length]
  return out
}

// Fake credentials of formats both tools know, built at run time (never committed).
const PLANTS = [
  () => `ghp_${rand(ALNUM, 36)}`,
  () => `AKIA${rand('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', 16)}`,
  () => `xoxb-${rand('0123456789', 12)}-${rand('0123456789', 13)}-${rand(ALNUM, 24)}`,
  () => `sk-ant-api03-${rand(ALNUM, 93)}AA`,
  () => `npm_${rand(ALNUM, 36)}`,
]

// Source-like filler, including near misses that make a scanner look twice (task-, ghost, AIR…).
const WORDS = [
  'const',
  'let',
  'return',
  'function',
  'await',
  'async',
  'import',
  'export',
  'from',
  'interface',
  'type',
  'request',
  'response',
  'provider',
  'token',
  'secret',
  'config',
  'handler',
  'middleware',
  'options',
  'task-runner',
  'risk-score',
  'desk-top',
  'ghost',
  'AIR',
  'SGML',
  'hf_hub',
  'npm_config',
  'glob',
  'xoxo',
  'sha512-',
  'base64',
  'apiKey',
  'process.env.API_KEY',
  'Bearer',
  'Authorization',
  'x-api-key',
  '${KEY}',
]
function line() {
  const parts = []
  const n = 4 + (randomBytes(1)[0] % 10)
  for (let i = 0; i < n; i++) {
    const r = randomBytes(1)[0]
    if (r < 30) parts.push(rand(HEX, 8 + (r % 32)))
    else if (r < 50) parts.push(JSON.stringify(rand(ALNUM, 6 + (r % 20))))
    else parts.push(WORDS[r % WORDS.length])
  }
  return `  ${parts.join(' ')};\n`
}

// A pool of lines to draw from: generating every line afresh would make the tree slower to build
// than to scan. Each file still gets its own order of lines and its own random tokens.
const POOL = Array.from({ length: 20_000 }, line)

function fileText() {
  const picks = randomBytes(4 * 2000)
  let text = ''
  for (let i = 0; text.length < FILE_BYTES; i++) {
    text +=
      i % 16 === 0
        ? `  // ${rand(ALNUM, 24)} ${rand(HEX, 40)}\n`
        : POOL[picks.readUInt32BE((i % 2000) * 4) % POOL.length]
  }
  return text
}

function generate(root) {
  let bytes = 0
  let files = 0
  let planted = 0
  const target = TARGET_MB * 1024 * 1024
  const exts = ['ts', 'js', 'json', 'yaml', 'md', 'py', 'env']
  while (bytes < target) {
    const dir = join(root, `pkg${Math.floor(files / 50)}`, `src${files % 5}`)
    mkdirSync(dir, { recursive: true })
    let text = fileText()
    if (files % 10 === 0) {
      // one planted credential every tenth file, in the middle
      const at = text.indexOf('\n', text.length >> 1) + 1
      text = `${text.slice(0, at)}  const leaked = "${PLANTS[planted % PLANTS.length]()}";\n${text.slice(at)}`
      planted++
    }
    writeFileSync(join(dir, `file${files}.${exts[files % exts.length]}`), text)
    bytes += Buffer.byteLength(text)
    files++
  }
  return { bytes, files, planted }
}

const mbs = (bytes, ms) => (bytes / 1024 / 1024 / (ms / 1000)).toFixed(1)

function timed(label, cmd, args, cwd) {
  const t0 = performance.now()
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: TIMEOUT_MS, maxBuffer: 256 * 1024 * 1024 })
  const ms = performance.now() - t0
  const timedOut = r.error !== undefined && r.error.code === 'ETIMEDOUT'
  return {
    label,
    ms,
    status: r.status,
    stdout: r.stdout || '',
    stderr: r.stderr || '',
    timedOut,
    error: r.error,
  }
}

async function main() {
  let lib
  try {
    lib = require(join(PKG, 'dist'))
  } catch {
    console.error('bench: build first (npx tsc -b packages/security-check)')
    process.exit(2)
  }
  const root = mkdtempSync(join(tmpdir(), 'gh-sc-bench-'))
  try {
    const t0 = performance.now()
    const tree = generate(root)
    writeFileSync(
      join(root, '.secretlintrc.json'),
      JSON.stringify({ rules: [{ id: '@secretlint/secretlint-rule-preset-recommend' }] }),
    )
    console.log(
      `machine: ${cpus().length} cores, load average ${loadavg()[0].toFixed(1)} (wall-clock rates fall when other work shares the cores)`,
    )
    console.log(
      `tree: ${tree.files} files, ${(tree.bytes / 1024 / 1024).toFixed(1)} MB, ${tree.planted} planted credentials (generated in ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    )

    // 1. In process (best of two runs; the first warms the page cache and the JIT).
    const runs = []
    for (let i = 0; i < 2; i++) {
      const s = performance.now()
      const cpu = process.cpuUsage()
      const result = await lib.scanSecrets({ cwd: root, paths: ['.'] })
      const used = process.cpuUsage(cpu)
      runs.push({ ms: performance.now() - s, cpuMs: (used.user + used.system) / 1000, result })
    }
    const best = runs.reduce((a, b) => (a.ms < b.ms ? a : b))
    console.log(
      `gatehouse-check scanSecrets(): ${mbs(best.result.bytes, best.ms)} MB/s wall, ${mbs(best.result.bytes, best.cpuMs)} MB/s per CPU-second (${(best.ms / 1000).toFixed(2)} s, ${best.result.findings.length} findings, ${best.result.files} files)`,
    )

    // 2. The CLI, start-up included.
    const cli = timed(
      'gatehouse-check',
      process.execPath,
      [join(PKG, 'dist', 'cli.js'), 'secrets', '--format', 'json'],
      root,
    )
    if (cli.timedOut) console.log(`gatehouse-check CLI: stopped after ${TIMEOUT_MS / 1000} s`)
    else {
      const n = JSON.parse(cli.stdout).findings.length
      console.log(
        `gatehouse-check CLI: ${mbs(tree.bytes, cli.ms)} MB/s (${(cli.ms / 1000).toFixed(2)} s wall, exit ${cli.status}, ${n} findings)`,
      )
    }

    // 3. secretlint with the recommended preset, on the same tree.
    // secretlint's package exports hide its bin: find it in the nearest node_modules.
    let secretlintBin
    for (let d = PKG; ; d = dirname(d)) {
      const candidate = join(d, 'node_modules', 'secretlint', 'bin', 'secretlint.js')
      if (existsSync(candidate)) {
        secretlintBin = candidate
        break
      }
      if (dirname(d) === d) break
    }
    if (secretlintBin === undefined) {
      console.log(
        'secretlint: not installed (npm install in the repository root installs the devDependencies)',
      )
      return
    }
    const sl = timed(
      'secretlint',
      process.execPath,
      [secretlintBin, '**/*', '--format', 'json', '--maskSecrets'],
      root,
    )
    if (sl.timedOut) {
      console.log(
        `secretlint (preset-recommend): stopped after ${TIMEOUT_MS / 1000} s, so under ${mbs(tree.bytes, TIMEOUT_MS)} MB/s`,
      )
    } else if (sl.status !== 0 && sl.status !== 1) {
      console.log(`secretlint (preset-recommend): failed (exit ${sl.status}): ${sl.stderr.split('\n')[0]}`)
    } else {
      let n = '?'
      try {
        n = JSON.parse(sl.stdout).reduce((sum, file) => sum + file.messages.length, 0)
      } catch {
        // keep "?"
      }
      console.log(
        `secretlint (preset-recommend): ${mbs(tree.bytes, sl.ms)} MB/s (${(sl.ms / 1000).toFixed(2)} s wall, exit ${sl.status}, ${n} findings)`,
      )
      console.log(`gatehouse-check CLI is ${(sl.ms / cli.ms).toFixed(1)}x secretlint on this tree`)
    }
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
