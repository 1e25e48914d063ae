'use strict'
// The bench scripts' child processes (bench/servers.js servers, each in its own process so each
// gets its own event loop; every child is SIGKILLed when the script exits, by any path) and the
// load they are put under.
const { spawn } = require('node:child_process')
const path = require('node:path')

const children = new Set()

function killChildren() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
}
process.on('exit', killChildren)

/**
 * Start `node bench/servers.js ...args`; resolves with the JSON it prints on its first line, and
 * the child's `pid` (taskset execs node in place, so it is node's). `cpus` (a taskset list such as
 * "0") pins the child to those CPUs; `env` is added to this process's environment.
 */
function startServer(args, cpus, env = {}) {
  return new Promise((resolve, reject) => {
    const argv = [path.join(__dirname, 'servers.js'), ...args]
    const options = { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } }
    const child = cpus ? spawn('taskset', ['-c', cpus, process.execPath, ...argv], options) : spawn(process.execPath, argv, options)
    children.add(child)
    let buf = ''
    const timer = setTimeout(() => reject(new Error(`${args[0]} did not start`)), 15000)
    child.stdout.on('data', (d) => {
      buf += d
      const nl = buf.indexOf('\n')
      if (nl !== -1) {
        clearTimeout(timer)
        resolve({ ...JSON.parse(buf.slice(0, nl)), pid: child.pid })
      }
    })
    child.on('exit', (code) => code && reject(new Error(`${args[0]} exited ${code}`)))
  })
}

/**
 * POST `body` (JSON) to `url` with autocannon over `CONNECTIONS` keep-alive connections, for
 * `duration` seconds or `amount` requests (one of them); resolves with autocannon's result.
 */
function load(url, headers, body, { connections = 32, duration, amount }) {
  const autocannon = require('autocannon')
  return new Promise((resolve, reject) => {
    autocannon(
      { url, method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, connections, ...(amount !== undefined ? { amount } : { duration }) },
      (err, result) => (err ? reject(err) : resolve(result)),
    )
  })
}

module.exports = { children, killChildren, load, startServer }
