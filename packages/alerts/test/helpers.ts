import { createAlertEngine, type AlertEngine, type BlockRequest } from '@gatehouse/alerts'

/** Only the clock is fake: timers, ticks and I/O run for real. */
export function fakeClock(): void {
  jest.useFakeTimers({
    now: new Date('2026-02-19T23:00:00Z'),
    doNotFake: ['nextTick', 'setImmediate', 'clearImmediate', 'queueMicrotask', 'setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'],
  })
}

/** An engine with one block_ip rule (memory store) and the blocks it asked for. */
export function blockEngine(condition: string, duration = '1m', ttl?: string): { engine: AlertEngine; blocks: BlockRequest[] } {
  const blocks: BlockRequest[] = []
  const engine = createAlertEngine({
    onBlockIp: (b) => void blocks.push(b),
    rules: [{ name: 'Rate limit violations', condition, duration, action: 'block_ip', ...(ttl ? { ttl } : {}) }],
  })
  return { engine, blocks }
}
