'use strict'
// Jest's global teardown: what the test files left open. Run in band (`npx jest --runInBand`), every
// test file shares this process, so one listener, socket, child process or ref'd timer a test
// forgot keeps jest from exiting, and CI waits until its own time limit. This fails the run instead,
// naming each one. jest's --detectOpenHandles finds the same but slows the whole run several times;
// this only looks once, at the end. With workers (jest.config.ts runs two) the leaks are in the
// workers, which jest ends itself, saying "failed to exit gracefully": .ci/run fails on that.

const GRACE_MS = 5000 // a handle that closes on its own within this is not a leak
const POLL_MS = 250

const isJestWorker = (h) => Array.isArray(h.spawnargs) && h.spawnargs.some((a) => String(a).includes('jest-worker'))
const isStdio = (h) => h === process.stdin || h === process.stdout || h === process.stderr || (typeof h.fd === 'number' && h.fd <= 2)

function describe(h) {
  const type = h.constructor?.name ?? typeof h
  if (Array.isArray(h.spawnargs)) return `${type} pid ${h.pid}: ${h.spawnargs.slice(0, 4).join(' ')}`
  if (typeof h.address === 'function' && h.listening !== undefined) {
    const a = h.address()
    // The start of its handler's source: which test made it.
    const handler = ['request', 'connection', 'secureConnection'].map((e) => h.listeners(e)[0]).find(Boolean)
    const source = handler ? ` (${String(handler).replace(/\s+/g, ' ').slice(0, 160)})` : ''
    return `${type} listening on ${a && typeof a === 'object' ? `${a.address}:${a.port}` : String(a)}${source}`
  }
  if (h.remotePort !== undefined || h.localPort !== undefined) return `${type} ${h.localAddress}:${h.localPort} -> ${h.remoteAddress}:${h.remotePort}`
  return type
}

/** The resources keeping the process alive, less stdio; undefined when jest runs workers. */
function leftOpen() {
  const handles = process._getActiveHandles()
  if (handles.some(isJestWorker)) return undefined
  const details = handles.filter((h) => !isStdio(h)).map(describe)
  // Timers are not handles: the resource list counts the ref'd ones.
  const timers = process.getActiveResourcesInfo().filter((t) => t === 'Timeout').length
  if (timers) details.push(`${timers} ref'd timer(s)`)
  return details
}

module.exports = async function openHandlesTeardown() {
  const deadline = Date.now() + GRACE_MS
  let open = leftOpen()
  while (open && open.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, POLL_MS))
    open = leftOpen()
  }
  if (!open || open.length === 0) return
  throw new Error(`the tests left open what keeps jest from exiting (find the test with --detectOpenHandles):\n  ${open.join('\n  ')}`)
}
