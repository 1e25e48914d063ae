#!/usr/bin/env node
'use strict'
/**
 * Derive the seccomp allowlist of the Gatehouse server from what it really does, and check it.
 *
 *   node scripts/derive-seccomp.js            trace the workload, list the syscalls, exit 1 if
 *                                             seccomp-profile.json denies one the server made
 *   node scripts/derive-seccomp.js --write    regenerate seccomp-profile.json from the trace
 *   node scripts/derive-seccomp.js --enforce [PROFILE]
 *                                             run the same workload with every server process
 *                                             under the profile (scripts/seccomp-exec.py)
 *   --json          the report as JSON on stdout
 *   --runs N        union of N traced runs (default 1; --write uses 2)
 *   --no-netns      do not move into a private network and mount namespace (no DNS step)
 *
 * The workload, run against the built server (npm run build first), every server process wrapped in
 * `strace -f -qq -e trace=all` (or the seccomp loader):
 *   gatehouse config check, gatehouse keys create (the key alone on stdout), then the gateway with
 *   TLS on a generated certificate, metrics on: /healthz, /readyz, an authenticated Anthropic request
 *   (JSON and SSE) and an OpenAI request proxied over HTTPS to a local MockUpstream whose host name
 *   is resolved through a real DNS query, a refused request, a metrics scrape, then SIGTERM, which
 *   must end the process with exit code 0.
 * As root, with unshare(1), the workload runs in its own network and mount namespaces: a private
 * loopback, a DNS server on 127.0.0.1:53 and a private /etc/resolv.conf pointing at it, so the
 * resolver's syscalls are part of the trace and nothing outside is touched.
 *
 * Needs strace (apt-get install -y strace) to derive, python3-seccomp to enforce.
 */
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const os = require('node:os')
const net = require('node:net')
const tls = require('node:tls')
const https = require('node:https')
const http = require('node:http')
const dgram = require('node:dgram')
const { randomBytes } = require('node:crypto')
const { Buffer } = require('node:buffer')

const ROOT = path.resolve(__dirname, '..')
const CLI = path.join(ROOT, 'packages', 'server', 'dist', 'cli.js')
const PROFILE = path.join(ROOT, 'seccomp-profile.json')
const SECCOMP_EXEC = path.join(__dirname, 'seccomp-exec.py')
const SELF = path.join(__dirname, 'derive-seccomp.js')
const UPSTREAM_HOST = 'upstream.gatehouse.test'
const ENOSYS = 38

/** Every process this script starts, killed if it has to give up. */
const children = new Set()
function track(child) {
  children.add(child)
  child.on('close', () => children.delete(child))
  return child
}
/** Temporary directories, removed even when the script gives up. */
const tempDirs = new Set()
function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  tempDirs.add(dir)
  return dir
}
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL')
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true })
})

/** x86_64 syscalls that aarch64 does not have, and what the same libc and Node call there instead. */
const AARCH64_EQUIVALENTS = {
  open: ['openat'],
  creat: ['openat'],
  stat: ['newfstatat'],
  lstat: ['newfstatat'],
  access: ['faccessat', 'faccessat2'],
  poll: ['ppoll'],
  select: ['pselect6'],
  epoll_wait: ['epoll_pwait'],
  epoll_create: ['epoll_create1'],
  pipe: ['pipe2'],
  dup2: ['dup3'],
  readlink: ['readlinkat'],
  unlink: ['unlinkat'],
  rmdir: ['unlinkat'],
  rename: ['renameat', 'renameat2'],
  mkdir: ['mkdirat'],
  chmod: ['fchmodat'],
  chown: ['fchownat'],
  lchown: ['fchownat'],
  link: ['linkat'],
  symlink: ['symlinkat'],
  getdents: ['getdents64'],
  eventfd: ['eventfd2'],
  signalfd: ['signalfd4'],
  inotify_init: ['inotify_init1'],
  utimes: ['utimensat'],
  futimesat: ['utimensat'],
  getpgrp: ['getpgid'],
  alarm: ['setitimer'],
  pause: ['ppoll'],
  mknod: ['mknodat'],
}

/**
 * What the container runtime's init (runc, a Go program) may call between installing the filter
 * and exec'ing the entrypoint: the exec FIFO handshake, closing inherited descriptors, the Go
 * runtime's own threads, then execve. Not traceable without a container engine; kept minimal.
 */
const RUNTIME_HANDOVER = [
  'openat',
  'read',
  'write',
  'close',
  'close_range',
  'fcntl',
  'getdents64',
  'newfstatat',
  'fstat',
  'getpid',
  'getppid',
  'gettid',
  'tgkill',
  'futex',
  'nanosleep',
  'sched_yield',
  'sched_getaffinity',
  'epoll_wait',
  'epoll_pwait',
  'epoll_ctl',
  'rt_sigreturn',
  'rt_sigaction',
  'rt_sigprocmask',
  'sigaltstack',
  'mmap',
  'munmap',
  'madvise',
  'mprotect',
  'exit',
  'exit_group',
]

/**
 * Made by the same libc and V8 in situations a short traced run does not reach: mremap when a large
 * block is reallocated, the clock calls when the kernel's clock source has no vDSO fast path (some
 * VMs), sleeps and yields in spin waits, tgkill when a fatal error aborts the process, and the
 * memory protection keys V8 guards WebAssembly code with on a CPU that has them (pkey_alloc fails
 * on one without, and V8 then never calls the other two; denied on one with, the first wasm module,
 * undici's HTTP parser behind fetch, aborts the process).
 */
const BEYOND_THE_TRACE = [
  'pkey_alloc',
  'pkey_mprotect',
  'pkey_free',
  'mremap',
  'clock_gettime',
  'clock_getres',
  'clock_nanosleep',
  'gettimeofday',
  'time',
  'nanosleep',
  'sched_yield',
  'tgkill',
]

// clone(2) flags: allow threads (CLONE_THREAD set), never a new process or namespace.
const CLONE_THREAD = 0x00010000
const CLONE_NAMESPACES = 0x7e020000 // NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET

function parseArgs(argv) {
  const opts = {
    write: false,
    json: false,
    enforce: null,
    runs: 0,
    netns: true,
    insideNetns: false,
    timeoutMs: 120_000,
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--write') opts.write = true
    else if (a === '--json') opts.json = true
    else if (a === '--no-netns') opts.netns = false
    else if (a === '--inside-netns') opts.insideNetns = true
    else if (a === '--enforce')
      opts.enforce = argv[i + 1] && !argv[i + 1].startsWith('--') ? path.resolve(argv[++i]) : PROFILE
    else if (a === '--runs') opts.runs = Number(argv[++i])
    else if (a === '--timeout') opts.timeoutMs = Number(argv[++i]) * 1000
    else if (a === '--help' || a === '-h') opts.help = true
    else throw new Error(`unknown argument ${JSON.stringify(a)}`)
  }
  if (!opts.runs) opts.runs = opts.write ? 2 : 1
  if (!Number.isInteger(opts.runs) || opts.runs < 1 || opts.runs > 5) throw new Error('--runs must be 1 to 5')
  return opts
}

const has = (cmd, args = ['--version']) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0

/** The allowlist the profile grants, and the syscalls it answers with ENOSYS (libc falls back). */
function profileCoverage(profile) {
  const allowed = new Set()
  const conditional = new Set()
  const enosys = new Set()
  for (const entry of profile.syscalls) {
    for (const name of entry.names) {
      if (entry.action === 'SCMP_ACT_ALLOW') {
        allowed.add(name)
        if (entry.args && entry.args.length) conditional.add(name)
      } else if (entry.action === 'SCMP_ACT_ERRNO' && entry.errnoRet === ENOSYS) enosys.add(name)
    }
  }
  return { allowed, conditional, enosys }
}

/** The syscall names in an `strace -f -o FILE` trace. */
function syscallsInTrace(text) {
  const names = new Set()
  for (const line of text.split('\n')) {
    const m = /^\d+\s+(?:<\.\.\. )?([a-z][a-z0-9_]*)(?:\(| resumed>)/.exec(line)
    if (m) names.add(m[1])
  }
  return names
}

function buildProfile(derivedNames, meta) {
  const special = new Set(['execve', 'clone', 'clone3'])
  const derived = [...derivedNames].filter((n) => !special.has(n)).sort()
  const have = new Set(derived)
  const aarch64 = new Set()
  for (const n of derived) for (const eq of AARCH64_EQUIVALENTS[n] ?? []) if (!have.has(eq)) aarch64.add(eq)
  for (const n of aarch64) have.add(n)
  const beyond = BEYOND_THE_TRACE.filter((n) => !have.has(n) && !special.has(n)).sort()
  for (const n of beyond) have.add(n)
  const handover = RUNTIME_HANDOVER.filter((n) => !have.has(n) && !special.has(n)).sort()
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: 1,
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_AARCH64'],
    syscalls: [
      {
        names: derived,
        action: 'SCMP_ACT_ALLOW',
        comment:
          `Derived by scripts/derive-seccomp.js (${meta.runs} traced run(s), node ${meta.node}, ${meta.arch}): every syscall the server made ` +
          'for config check, keys create, start, TLS, proxying over HTTPS with DNS, metrics, audit log and SIGTERM. Regenerate with --write.',
      },
      {
        names: [...aarch64].sort(),
        action: 'SCMP_ACT_ALLOW',
        comment:
          'aarch64 has no open/stat/poll/epoll_wait/...: the *at and p* calls libc makes there instead of the derived x86_64 ones.',
      },
      ...(beyond.length
        ? [
            {
              names: beyond,
              action: 'SCMP_ACT_ALLOW',
              comment:
                'Not in a short trace, made by the same libc and V8 under load or on other kernels: large reallocs, clocks without vDSO, spin waits, abort.',
            },
          ]
        : []),
      ...(handover.length
        ? [
            {
              names: handover,
              action: 'SCMP_ACT_ALLOW',
              comment:
                'The container runtime installs the filter and then still runs its own init (Go) until it execs the entrypoint.',
            },
          ]
        : []),
      {
        names: ['execve'],
        action: 'SCMP_ACT_ALLOW',
        comment:
          'Needed once: the runtime applies this filter before it execs node, so denying execve stops the container from starting. ' +
          'Node never execs afterwards; fork is denied below, no-new-privileges blocks setuid gains, the image has no shell.',
      },
      {
        names: ['clone'],
        action: 'SCMP_ACT_ALLOW',
        args: [
          {
            index: 0,
            value: CLONE_THREAD | CLONE_NAMESPACES,
            valueTwo: CLONE_THREAD,
            op: 'SCMP_CMP_MASKED_EQ',
          },
        ],
        comment:
          'Threads only (libuv pool, V8 workers): CLONE_THREAD set and no CLONE_NEW* flag. fork, vfork and namespaces are refused.',
      },
      {
        names: ['clone3'],
        action: 'SCMP_ACT_ERRNO',
        errnoRet: ENOSYS,
        comment:
          'clone3 passes its flags in memory seccomp cannot read: ENOSYS makes glibc fall back to clone, checked above.',
      },
    ],
  }
}

// ---------------------------------------------------------------- the workload

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

/** A DNS server that answers A for the upstream's name with 127.0.0.1, AAAA with no answer. */
function startDns() {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4')
    const queries = []
    sock.on('message', (msg, rinfo) => {
      if (msg.length < 12) return
      let off = 12
      const labels = []
      while (off < msg.length && msg[off] !== 0) {
        labels.push(msg.subarray(off + 1, off + 1 + msg[off]).toString('ascii'))
        off += msg[off] + 1
      }
      off += 1
      const qtype = msg.readUInt16BE(off)
      const question = msg.subarray(12, off + 4)
      const name = labels.join('.').toLowerCase()
      queries.push({ name, qtype })
      const known = name === UPSTREAM_HOST
      const answer = known && qtype === 1
      const header = Buffer.alloc(12)
      msg.copy(header, 0, 0, 2)
      header.writeUInt16BE(known ? 0x8180 : 0x8183, 2)
      header.writeUInt16BE(1, 4)
      header.writeUInt16BE(answer ? 1 : 0, 6)
      const parts = [header, question]
      if (answer) parts.push(Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]))
      sock.send(Buffer.concat(parts), rinfo.port, rinfo.address)
    })
    sock.once('error', reject)
    sock.bind(53, '127.0.0.1', () => resolve({ queries, close: () => new Promise((r) => sock.close(r)) }))
  })
}

/** TLS in front of the mock upstream, with a certificate for its host name. */
function startTlsFront(targetPort, cert) {
  return new Promise((resolve, reject) => {
    const server = tls.createServer({ cert: cert.cert, key: cert.key }, (socket) => {
      const upstream = net.connect(targetPort, '127.0.0.1')
      socket.pipe(upstream).pipe(socket)
      upstream.on('error', () => socket.destroy())
      socket.on('error', () => upstream.destroy())
    })
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () =>
      resolve({ port: server.address().port, close: () => new Promise((r) => server.close(r)) }),
    )
  })
}

function request(url, { method = 'GET', headers = {}, body, ca } = {}) {
  const u = new URL(url)
  const mod = u.protocol === 'https:' ? https : http
  return new Promise((resolve, reject) => {
    const req = mod.request(
      u,
      {
        method,
        headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) },
        ca,
        servername: 'localhost',
        timeout: 15_000,
        agent: false,
      },
      (res) => {
        const chunks = []
        res.on('data', (c) => chunks.push(c))
        res.on('end', () =>
          resolve({
            status: res.statusCode,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        )
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error(`timeout: ${method} ${url}`)))
    req.on('error', reject)
    req.end(body ? JSON.stringify(body) : undefined)
  })
}

/** Spawn a wrapped gatehouse command; resolves when it exits (killed after timeoutMs). */
function runWrapped(wrap, args, { cwd, env, timeoutMs = 30_000 }) {
  const [file, argv] = wrap(args)
  return new Promise((resolve) => {
    const child = track(spawn(file, argv, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] }))
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', (e) => {
      clearTimeout(timer)
      resolve({ code: null, stdout, stderr: stderr + String(e) })
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

/** Start the wrapped gateway and wait for its "listening" line. */
function startGateway(wrap, args, { cwd, env, timeoutMs = 30_000 }) {
  const [file, argv] = wrap(args)
  const child = track(spawn(file, argv, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] }))
  // The server logs one JSON object a line, info to stdout and warnings to stderr: read both.
  let output = ''
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })))
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`gateway did not start within ${timeoutMs} ms:\n${output.slice(-2000)}`)),
      timeoutMs,
    )
    const onData = (d) => {
      output += d
      const m = /"message":"gatehouse listening","url":"([^"]+)"/.exec(output)
      if (m) {
        clearTimeout(timer)
        resolve(m[1])
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    void exited.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(new Error(`gateway exited (${code ?? signal}) before listening:\n${output.slice(-2000)}`))
    })
  })
  /** The node process itself: strace runs it as its child; the seccomp loader execs into it. */
  const nodePid = () => {
    if (file !== 'strace') return child.pid
    try {
      const kids = fs
        .readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8')
        .trim()
        .split(/\s+/)
        .filter(Boolean)
      return kids.length ? Number(kids[0]) : child.pid
    } catch {
      return child.pid
    }
  }
  const signal = (sig) => {
    const pid = nodePid()
    try {
      process.kill(pid, sig)
    } catch {
      // already gone
    }
    if (sig === 'SIGKILL' && pid !== child.pid) child.kill('SIGKILL')
  }
  return { child, ready, exited, output: () => output, signal }
}

/** The workload's surroundings: certificates, the mock upstream behind a TLS front, DNS, the config file. */
async function prepareWorkload(dir, dns, cleanups) {
  const { MockUpstream, generateCertificate } = require(
    path.join(ROOT, 'node_modules', '@gatehouse', 'testing'),
  )
  fs.mkdirSync(path.join(dir, 'tls'))
  const ca = generateCertificate({ commonName: 'gatehouse seccomp CA', isCA: true })
  const host = dns ? UPSTREAM_HOST : 'localhost'
  const upstreamCert = generateCertificate({ commonName: host, altNames: [host], issuer: ca })
  const serverCert = generateCertificate({ commonName: 'localhost' })
  fs.writeFileSync(path.join(dir, 'tls', 'server.crt'), serverCert.cert)
  fs.writeFileSync(path.join(dir, 'tls', 'server.key'), serverCert.key, { mode: 0o600 })
  fs.writeFileSync(path.join(dir, 'upstream-ca.pem'), ca.cert)

  const upstream = await MockUpstream.start()
  cleanups.push(() => upstream.close())
  const front = await startTlsFront(upstream.port, upstreamCert)
  cleanups.push(() => front.close())
  let dnsServer
  if (dns) {
    dnsServer = await startDns()
    cleanups.push(() => dnsServer.close())
  }
  const metricsPort = await freePort()
  const anthropicKey = `sk-ant-api03-${randomBytes(40).toString('base64url')}`
  const openaiKey = `sk-proj-${randomBytes(40).toString('base64url')}`
  const base = `https://${host}:${front.port}`
  fs.writeFileSync(
    path.join(dir, 'config.yaml'),
    [
      'server:',
      '  host: 127.0.0.1',
      '  port: 0',
      '  tls: { enabled: true, cert_file: tls/server.crt, key_file: tls/server.key, min_version: "1.2" }',
      'auth:',
      '  dir: auths',
      'providers:',
      `  claude: { base_url: "${base}", api_key: "${anthropicKey}" }`,
      `  openai: { base_url: "${base}", api_key: "${openaiKey}" }`,
      'logging:',
      '  audit: { file: logs/audit.log }',
      `metrics: { enabled: true, host: 127.0.0.1, port: ${metricsPort} }`,
      '',
    ].join('\n'),
  )
  const env = { PATH: process.env.PATH, NODE_EXTRA_CA_CERTS: path.join(dir, 'upstream-ca.pem') }
  const opts = { cwd: dir, env }

  return { upstream, dnsServer, metricsPort, anthropicKey, openaiKey, serverCert, opts }
}

/** The requests a gateway under the profile must serve: health, proxied JSON and SSE, a refusal, a scrape. */
async function exerciseGateway(url, key, { upstream, dnsServer, metricsPort, anthropicKey, serverCert }, dns, step) {
  const ca0 = serverCert.cert
  const health = await request(`${url}/healthz`, { ca: ca0 })
  step('GET /healthz over TLS is 200', health.status === 200, health.status)
  const ready = await request(`${url}/readyz`, { ca: ca0 })
  step('GET /readyz is 200', ready.status === 200, `${ready.status} ${ready.body}`)
  const msgBody = {
    model: 'claude-sonnet-4-5',
    max_tokens: 32,
    messages: [{ role: 'user', content: 'hello' }],
  }
  const msg = await request(`${url}/v1/messages`, {
    method: 'POST',
    headers: { 'x-api-key': key },
    body: msgBody,
    ca: ca0,
  })
  const injected = upstream.last && upstream.last.headers['x-api-key'] === anthropicKey
  step(
    'authenticated /v1/messages proxied to the upstream with the vault credential',
    msg.status === 200 && injected,
    `${msg.status} ${msg.body.slice(0, 200)}`,
  )
  const stream = await request(`${url}/v1/messages`, {
    method: 'POST',
    headers: { 'x-api-key': key },
    body: { ...msgBody, stream: true },
    ca: ca0,
  })
  step(
    'streamed /v1/messages ends with message_stop',
    stream.status === 200 && stream.body.includes('event: message_stop'),
    stream.status,
  )
  const chat = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}` },
    body: { model: 'gpt-4o-mini', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] },
    ca: ca0,
  })
  step(
    'authenticated /v1/chat/completions proxied',
    chat.status === 200,
    `${chat.status} ${chat.body.slice(0, 200)}`,
  )
  const refused = await request(`${url}/v1/messages`, { method: 'POST', body: msgBody, ca: ca0 })
  step('request without a client key is refused with 401', refused.status === 401, refused.status)
  const metrics = await request(`http://127.0.0.1:${metricsPort}/metrics`)
  step(
    'metrics scrape is 200',
    metrics.status === 200 && metrics.body.includes('gatehouse_'),
    metrics.status,
  )
  if (dns)
    step(
      'the upstream host name was resolved through DNS',
      dnsServer.queries.some((q) => q.name === UPSTREAM_HOST),
      JSON.stringify(dnsServer.queries.slice(0, 4)),
    )

}

/**
 * One run of the workload. `wrap(args)` returns [file, argv] that runs `node CLI ...args` under
 * strace or the seccomp loader. Returns the steps with their outcome.
 */
async function workload(wrap, { dns }) {
  const dir = tempDir('gh-seccomp-')
  const steps = []
  const step = (name, ok, detail = '') => {
    steps.push({ name, ok: Boolean(ok), ...(detail ? { detail: String(detail).slice(0, 600) } : {}) })
    if (process.env.DERIVE_SECCOMP_DEBUG)
      console.error(
        `[derive-seccomp] ${process.uptime().toFixed(1)}s ${ok ? 'ok' : 'FAIL'} ${name} ${detail}`,
      )
  }
  const cleanups = []
  let gw
  try {
    const env0 = await prepareWorkload(dir, dns, cleanups)
    const { anthropicKey, openaiKey, opts } = env0
    const checked = await runWrapped(wrap, ['config', 'check', '--config', 'config.yaml'], opts)
    step('gatehouse config check exits 0', checked.code === 0, checked.code === 0 ? '' : checked.stderr)
    const created = await runWrapped(
      wrap,
      ['keys', 'create', '--name', 'seccomp', '--config', 'config.yaml'],
      opts,
    )
    const key = created.stdout.trim()
    step(
      'gatehouse keys create prints the key alone',
      created.code === 0 && /^gate_live_[A-Za-z0-9]{43}_[A-Za-z0-9]{6}$/.test(key),
      created.code === 0 ? '' : created.stderr,
    )

    gw = startGateway(wrap, ['--config', 'config.yaml'], opts)
    const url = await gw.ready
    step('gateway listens over TLS', url.startsWith('https://'), url)
    await exerciseGateway(url, key, env0, dns, step)
    gw.signal('SIGTERM')
    const timer = setTimeout(() => gw.signal('SIGKILL'), 20_000)
    const { code, signal } = await gw.exited
    clearTimeout(timer)
    step(
      'SIGTERM drains and exits 0',
      code === 0,
      code === 0 ? '' : `${code ?? signal}\n${gw.output().slice(-1500)}`,
    )
    const audit = path.join(dir, 'logs', 'audit.log')
    step('audit log written', fs.existsSync(audit) && fs.statSync(audit).size > 0)
    const leaked = [anthropicKey, openaiKey, key].some(
      (s) => gw.output().includes(s) || (fs.existsSync(audit) && fs.readFileSync(audit, 'utf8').includes(s)),
    )
    step('no key in the server output or audit log', !leaked)
  } catch (e) {
    step('workload', false, e && e.stack ? e.stack : e)
  } finally {
    if (gw && gw.child.exitCode === null && gw.child.signalCode === null) {
      gw.signal('SIGKILL')
      await gw.exited
    }
    for (const c of cleanups.reverse()) await c().catch(() => undefined)
    fs.rmSync(dir, { recursive: true, force: true })
  }
  return steps
}

// ---------------------------------------------------------------- modes

async function derive(opts, dns) {
  const traceDir = tempDir('gh-strace-')
  const names = new Set()
  const runs = []
  try {
    for (let run = 0; run < opts.runs; run++) {
      let n = 0
      const wrap = (args) => [
        'strace',
        [
          '-f',
          '-qq',
          '-e',
          'trace=all',
          '-o',
          path.join(traceDir, `run${run}-${n++}.trace`),
          process.execPath,
          CLI,
          ...args,
        ],
      ]
      const steps = await workload(wrap, { dns })
      runs.push(steps)
      for (const f of fs.readdirSync(traceDir)) {
        if (!f.startsWith(`run${run}-`)) continue
        for (const name of syscallsInTrace(fs.readFileSync(path.join(traceDir, f), 'utf8'))) names.add(name)
      }
    }
  } finally {
    fs.rmSync(traceDir, { recursive: true, force: true })
  }
  return { names, runs }
}

async function inner(opts) {
  const dns = opts.insideNetns
  const meta = { node: process.version, arch: process.arch, kernel: os.release(), dns, runs: opts.runs }
  if (!fs.existsSync(CLI)) throw new Error(`${path.relative(ROOT, CLI)} is missing: run npm run build first`)

  if (opts.enforce) {
    if (!has('/usr/bin/python3', ['-c', 'import seccomp']))
      throw new Error('python3-seccomp is not installed (apt-get install -y python3-seccomp)')
    const wrap = (args) => [
      '/usr/bin/python3',
      [SECCOMP_EXEC, opts.enforce, '--', process.execPath, CLI, ...args],
    ]
    const steps = await workload(wrap, { dns })
    const ok = steps.every((s) => s.ok)
    return {
      ok,
      report: { mode: 'enforce', profile: path.relative(ROOT, opts.enforce) || opts.enforce, ...meta, steps },
    }
  }

  if (!has('strace', ['-V'])) throw new Error('strace is not installed (apt-get install -y strace)')
  const { names, runs } = await derive(opts, dns)
  const steps = runs.flat()
  const stepsOk = steps.every((s) => s.ok)
  const derived = [...names].sort()
  if (opts.write) {
    if (!stepsOk)
      return {
        ok: false,
        report: { mode: 'write', ...meta, derived, steps, error: 'the workload failed: profile not written' },
      }
    const profile = buildProfile(names, meta)
    fs.writeFileSync(PROFILE, `${JSON.stringify(profile, null, 2)}\n`)
    return {
      ok: true,
      report: { mode: 'write', ...meta, derived, steps, wrote: path.relative(ROOT, PROFILE) },
    }
  }
  const profile = JSON.parse(fs.readFileSync(PROFILE, 'utf8'))
  const { allowed, enosys } = profileCoverage(profile)
  const denied = derived.filter((n) => !allowed.has(n) && !enosys.has(n))
  return { ok: stepsOk && denied.length === 0, report: { mode: 'check', ...meta, derived, denied, steps } }
}

function print(report, opts) {
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`)
    return
  }
  for (const s of report.steps || [])
    console.log(`${s.ok ? 'ok  ' : 'FAIL'} ${s.name}${s.ok || !s.detail ? '' : `\n     ${s.detail}`}`)
  if (report.derived)
    console.log(
      `\n${report.derived.length} syscalls (node ${report.node}, ${report.arch}, DNS ${report.dns ? 'traced' : 'not traced'}):\n${report.derived.join(' ')}`,
    )
  if (report.denied && report.denied.length)
    console.log(
      `\nseccomp-profile.json denies ${report.denied.join(', ')}: run node scripts/derive-seccomp.js --write`,
    )
  if (report.denied && !report.denied.length) console.log('\nseccomp-profile.json allows every one of them')
  if (report.wrote) console.log(`\nwrote ${report.wrote}`)
  if (report.error) console.error(report.error)
}

async function main() {
  let opts
  try {
    opts = parseArgs(process.argv.slice(2))
  } catch (e) {
    console.error(`derive-seccomp: ${e.message}`)
    return 2
  }
  if (opts.help) {
    console.log(fs.readFileSync(SELF, 'utf8').split('\n').slice(2, 28).join('\n'))
    return 0
  }
  // Move into private network and mount namespaces when we can, so DNS is part of the trace.
  if (
    opts.netns &&
    !opts.insideNetns &&
    process.getuid &&
    process.getuid() === 0 &&
    has('ip', ['-V']) &&
    has('unshare', ['--net', '--mount', 'true'])
  ) {
    const args = [
      '--net',
      '--mount',
      '--fork',
      '--kill-child',
      '--',
      process.execPath,
      SELF,
      ...process.argv.slice(2),
      '--inside-netns',
    ]
    const child = spawn('unshare', args, { stdio: 'inherit' })
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs + 5000)
    return new Promise((resolve) =>
      child.on('close', (code) => {
        clearTimeout(timer)
        resolve(code ?? 1)
      }),
    )
  }
  if (opts.insideNetns) {
    const up = spawnSync('ip', ['link', 'set', 'lo', 'up'], { encoding: 'utf8' })
    if (up.status !== 0) throw new Error(`ip link set lo up: ${up.stderr}`)
    // A private /etc/resolv.conf, visible in this mount namespace only.
    const resolvDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-resolv-'))
    const resolv = path.join(resolvDir, 'resolv.conf')
    fs.writeFileSync(resolv, 'nameserver 127.0.0.1\noptions timeout:2 attempts:2\n')
    const mounted = spawnSync('mount', ['--bind', resolv, '/etc/resolv.conf'], { encoding: 'utf8' })
    fs.rmSync(resolvDir, { recursive: true, force: true }) // the bind mount keeps the file's content
    if (mounted.status !== 0) throw new Error(`mount --bind resolv.conf: ${mounted.stderr}`)
  }
  const deadline = setTimeout(() => {
    console.error(`derive-seccomp: gave up after ${opts.timeoutMs / 1000} s`)
    process.exit(1)
  }, opts.timeoutMs)
  deadline.unref()
  const { ok, report } = await inner(opts)
  print(report, opts)
  return ok ? 0 : 1
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      console.error(`derive-seccomp: ${e && e.message ? e.message : e}`)
      process.exit(1)
    },
  )
}

module.exports = {
  buildProfile,
  profileCoverage,
  syscallsInTrace,
  AARCH64_EQUIVALENTS,
  RUNTIME_HANDOVER,
  BEYOND_THE_TRACE,
}
