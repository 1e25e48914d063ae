'use strict'
// Preloaded into the gateway by bench/soak.js:
//   node --expose-gc -r ./bench/soak-preload.js packages/server/dist/cli.js --config …
// On SIGUSR2 it collects garbage fully and prints one line to stdout:
//   {"soak_heap":{"rss":…,"heapTotal":…,"heapUsed":…,"external":…,"arrayBuffers":…,"resources":{"TCPSocketWrap":3,…}}}
// It adds no timer or handle of its own (signal handlers do not keep the loop alive), so it changes
// neither when the gateway exits nor what the soak measures.
const { setImmediate } = require('node:timers')

const write = (info) => process.stdout.write(`${JSON.stringify({ soak_heap: info })}\n`)

process.on('SIGUSR2', () => {
  const gc = globalThis.gc
  if (typeof gc !== 'function') {
    write({ error: 'gc() is not exposed: start node with --expose-gc' })
    return
  }
  // Full collections with turns of the event loop between them, so weak callbacks and
  // FinalizationRegistry cleanups queued by one collection have run before the next.
  gc()
  setImmediate(() => {
    gc()
    setImmediate(() => {
      gc()
      const resources = {}
      for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1
      write({ ...process.memoryUsage(), resources })
    })
  })
})
