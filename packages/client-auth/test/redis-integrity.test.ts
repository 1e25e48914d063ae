import { randomBytes } from 'node:crypto'
import Redis from 'ioredis'
import { RedisKeyStore } from '@gatehouse/client-auth'
import { recordingLogger, waitFor } from '@gatehouse/testing'

/**
 * The shared key store in Redis is the gateways', not Redis's: each record carries an HMAC under a
 * key derived from the salt (which Redis never holds). Whoever can write to Redis cannot widen a
 * key's scope or add a key of their own: the entry is refused and logged, and the others still work.
 */

describe('RedisKeyStore integrity', () => {
  const prefix = `gh-auth-int-${randomBytes(4).toString('hex')}:`
  const salt = randomBytes(32).toString('hex')
  let redis: Redis
  const stores: RedisKeyStore[] = []
  // The store leaves the client it is given open (it is the caller's): the test closes each.
  const clients: Redis[] = []
  const open = async (): Promise<{ store: RedisKeyStore; log: ReturnType<typeof recordingLogger> }> => {
    const log = recordingLogger()
    const client = new Redis('redis://127.0.0.1:6379')
    clients.push(client)
    const store = new RedisKeyStore({ client, salt, prefix, resyncMs: 100, logger: log })
    stores.push(store)
    await store.start()
    return { store, log }
  }
  beforeAll(() => {
    redis = new Redis('redis://127.0.0.1:6379')
  })
  afterAll(async () => {
    for (const s of stores) await s.close()
    for (const c of clients) c.disconnect()
    const keys = await redis.keys(`${prefix}*`)
    if (keys.length) await redis.del(...keys)
    redis.disconnect()
  })

  it('refuses an entry whose scope was widened in Redis, and a key added there; the untouched keys keep working', async () => {
    const { store: writer } = await open()
    const narrow = await writer.create({ name: 'narrow', providers: ['claude'] })
    const other = await writer.create({ name: 'other' })
    const { store: reader, log } = await open()
    expect(reader.verify(narrow.key)?.providers).toEqual(['claude'])

    // Someone with Redis access widens the narrow key (keeping its MAC) and adds a key of their own.
    const hashKey = `${prefix}client-keys`
    const stored = JSON.parse((await redis.hget(hashKey, narrow.record.hash))!) as Record<string, unknown>
    delete stored.providers
    const planted = { ...narrow.record, id: 'key_planted', hash: randomBytes(32).toString('hex'), name: 'planted' }
    delete (planted as { providers?: unknown }).providers
    await redis.hset(hashKey, narrow.record.hash, JSON.stringify(stored), planted.hash, JSON.stringify({ ...planted, mac: 'f'.repeat(64) }))
    // An editor who also bumps the version, so that every replica reloads (the periodic check sees it).
    await redis.incr(`${hashKey}:version`)
    await waitFor(() => reader.verify(narrow.key) === undefined)
    expect(reader.list().map((r) => r.id)).toEqual([other.record.id])
    expect(reader.verify(other.key)?.id).toBe(other.record.id)
    expect(log.calls.some((c) => c.level === 'error' && JSON.stringify(c).includes('changed outside Gatehouse'))).toBe(true)
    // Nothing of a key in what was logged.
    expect(JSON.stringify(log.calls)).not.toContain(narrow.key)
  })
})
