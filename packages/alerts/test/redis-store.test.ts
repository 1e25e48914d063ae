import { randomBytes } from 'node:crypto'
import Redis from 'ioredis'
import { createAlertEngine, RedisAlertStore, type BlockRequest } from '@gatehouse/alerts'
import { rateLimitedEvent, sleep } from '@gatehouse/testing'

const prefix = `gh-test-${randomBytes(6).toString('hex')}:`
let redis: Redis

beforeAll(() => {
  redis = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: false, maxRetriesPerRequest: 1 })
})
afterAll(async () => {
  const keys = await redis.keys(`${prefix}*`)
  if (keys.length > 0) await redis.del(...keys)
  await redis.quit()
})

const rules = [{ name: 'Rate limit violations', condition: 'rate_limit_violations > 50', duration: '2s', action: 'block_ip' as const }]

describe('RedisAlertStore', () => {
  it('shares one window between instances: the rule fires once across them, per address', async () => {
    const blocks: Array<BlockRequest & { instance: string }> = []
    const engines = ['a', 'b'].map((instance) =>
      createAlertEngine({
        rules,
        store: new RedisAlertStore({ client: redis, prefix }),
        onBlockIp: (b) => void blocks.push({ ...b, instance }),
      }),
    )
    for (let i = 0; i < 60; i++) engines[i % 2]!.recordEvent(rateLimitedEvent('203.0.113.50'))
    for (let i = 0; i < 40; i++) engines[i % 2]!.recordEvent(rateLimitedEvent('203.0.113.51'))
    await Promise.all(engines.map((e) => e.idle()))
    expect(blocks.map((b) => b.ip)).toEqual(['203.0.113.50'])
    expect(blocks[0]).toMatchObject({ ttlSeconds: 3600, reason: expect.stringContaining('rate_limit_violations reached 51 in 2s') })

    const windowKey = `${prefix}alert:rate-limit-violations:203.0.113.50`
    expect(await redis.zcard(windowKey)).toBe(51) // capped at the firing count
    const ttl = await redis.pttl(windowKey)
    expect(ttl).toBeGreaterThan(0)
    expect(ttl).toBeLessThanOrEqual(2000)
    expect(await redis.exists(`${prefix}alert-fired:rate-limit-violations:203.0.113.50`)).toBe(1)
    await Promise.all(engines.map((e) => e.shutdown()))
  })

  it('fires again once the window has passed', async () => {
    const blocks: BlockRequest[] = []
    const engine = createAlertEngine({
      rules: [{ ...rules[0]!, condition: 'rate_limit_violations > 2', duration: '1s' }],
      store: new RedisAlertStore({ client: redis, prefix }),
      onBlockIp: (b) => void blocks.push(b),
    })
    const burst = async (): Promise<void> => {
      for (let i = 0; i < 5; i++) engine.recordEvent(rateLimitedEvent('198.51.100.77'))
      await engine.idle()
    }
    await burst()
    await burst()
    expect(blocks).toHaveLength(1)
    await sleep(1100) // real time: the fired marker and the window are Redis keys that Redis expires (PX/PEXPIRE)
    await burst()
    expect(blocks).toHaveLength(2)
    await engine.shutdown()
  })
})
