import { createAlertEngine, type AlertEngine, type BlockRequest } from '@gatehouse/alerts'

/** An engine with one block_ip rule (memory store) and the blocks it asked for. */
export function blockEngine(condition: string, duration = '1m', ttl?: string): { engine: AlertEngine; blocks: BlockRequest[] } {
  const blocks: BlockRequest[] = []
  const engine = createAlertEngine({
    onBlockIp: (b) => void blocks.push(b),
    rules: [{ name: 'Rate limit violations', condition, duration, action: 'block_ip', ...(ttl ? { ttl } : {}) }],
  })
  return { engine, blocks }
}
