import { ipKey, MemoryStore, rateLimit } from '@gatehouse/rate-limit'
import request from 'supertest'
import { createTestApp } from '@gatehouse/testing'

describe('memory store bounds', () => {
  it('keeps at most maxKeys buckets while 100,000 distinct IPv6 clients pass through', async () => {
    const store = new MemoryStore({ maxKeys: 1000 })
    const bucket = { namespace: 'req:ip', capacity: 5, refillPerSecond: 0.1 }
    const started = Date.now()
    const seen = new Set<string>()
    let maxSize = 0
    let refused = 0
    for (let i = 0; i < 100_000; i++) {
      // Distinct /56 prefixes: 2001:db8:HHHH:LL00::/56
      const ip = `2001:db8:${(i >>> 8).toString(16)}:${(i & 0xff).toString(16)}00::${(i % 7) + 1}`
      const key = ipKey(ip)
      if (i < 2000) seen.add(key)
      const state = await store.take({ ...bucket, key }, 1)
      if (!state.allowed) refused++
      if (store.size('req:ip') > maxSize) maxSize = store.size('req:ip')
    }
    expect(refused).toBe(0) // every client was new: a full bucket each
    expect(seen.size).toBe(2000) // the keys really were distinct
    expect(store.size('req:ip')).toBe(1000)
    expect(maxSize).toBe(1000)
    expect(Date.now() - started).toBeLessThan(20_000)
    await store.shutdown()
  })

  it('forgets the least recently used bucket first', async () => {
    const store = new MemoryStore({ maxKeys: 2 })
    const b = { namespace: 'n', capacity: 1, refillPerSecond: 0.001 }
    await store.take({ ...b, key: 'a' }, 1)
    await store.take({ ...b, key: 'b' }, 1)
    expect((await store.take({ ...b, key: 'a' }, 1)).allowed).toBe(false) // touches a
    await store.take({ ...b, key: 'c' }, 1) // evicts b, the least recently used
    expect((await store.take({ ...b, key: 'a' }, 1)).allowed).toBe(false)
    expect((await store.take({ ...b, key: 'b' }, 1)).allowed).toBe(true) // forgotten: full again
  })

  it('keeps each namespace bounded on its own, so an address flood cannot evict the global bucket', async () => {
    const store = new MemoryStore({ maxKeys: 10 })
    const global = { namespace: 'req:global', key: 'global', capacity: 1, refillPerSecond: 0.001 }
    await store.take(global, 1)
    for (let i = 0; i < 500; i++)
      await store.take(
        { namespace: 'req:ip', key: `10.0.${i >> 8}.${i & 0xff}`, capacity: 1, refillPerSecond: 0.001 },
        1,
      )
    expect(store.size('req:ip')).toBe(10)
    expect((await store.take(global, 1)).allowed).toBe(false)
  })

  it('drops full buckets instead of keeping them', async () => {
    let now = 0
    const store = new MemoryStore({ clock: () => now })
    const b = { namespace: 'n', key: 'k', capacity: 2, refillPerSecond: 1 }
    await store.take(b, 1)
    expect(store.size('n')).toBe(1)
    now += 5000
    await store.take(b, 1)
    await store.adjust(b, -1)
    expect(store.size('n')).toBe(0)
  })

  it('holds the per-IP state of a live limiter at the ceiling under an address flood over HTTP', async () => {
    const store = new MemoryStore({ maxKeys: 50 })
    const app = createTestApp(rateLimit({ requestsPerMinute: 1, store }))
    app.set('trust proxy', 'loopback')
    for (let i = 0; i < 120; i++) {
      await request(app)
        .get('/')
        .set('x-forwarded-for', `2001:db8:${i.toString(16)}::1`)
        .expect(200)
    }
    expect(store.size('req:ip')).toBe(50)
  })
})
