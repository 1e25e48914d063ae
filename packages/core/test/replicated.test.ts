import { randomBytes } from 'node:crypto'
import Redis from 'ioredis'
import { ReplicatedHash, type ReplicatedHashClient } from '@gatehouse/core'
import { fakeClock, sleep, waitFor, type FakeClock } from '@gatehouse/testing'

/** Replicated state on the machine's Redis, each test under a key of its own. */

const clients: Redis[] = []
const hashes: ReplicatedHash[] = []
let clock: FakeClock | undefined
afterEach(async () => {
  clock?.restore()
  for (const h of hashes.splice(0)) await h.close()
  for (const c of clients.splice(0)) c.disconnect()
})

function client(port = 6379): Redis {
  const c = new Redis({ port, host: '127.0.0.1', enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 500, retryStrategy: () => 200 })
  c.on('error', () => undefined)
  clients.push(c)
  return c
}

/** Until a replica of `key` has subscribed (its read on subscribing went out with the SUBSCRIBE): a change made after that reaches it only by the resync. */
const subscribed = async (raw: Redis, key: string, fake: FakeClock, n = 1): Promise<void> =>
  fake.until(async () => (await raw.pubsub('NUMSUB', `${key}:changed`))[1] === n, 2000, 'the subscription')

const ready = (c: Redis): Promise<void> => (c.status === 'ready' ? Promise.resolve() : new Promise((r) => c.once('ready', () => r())))

/** A replica: its copy, and when each copy arrived. */
function replica(key: string, c: ReplicatedHashClient = client(), resyncMs = 1000) {
  const connected = c instanceof Redis && c.options.port !== 1 ? ready(c) : Promise.resolve()
  const copies: Array<{ entries: Map<string, string>; version: number; at: number }> = []
  const hash = new ReplicatedHash({ client: c, key, resyncMs, onChange: (entries, version) => copies.push({ entries: new Map(entries), version, at: Date.now() }) })
  hashes.push(hash)
  const start = hash.start.bind(hash)
  hash.start = async () => {
    await connected
    return start()
  }
  return { hash, copies, latest: () => copies[copies.length - 1]?.entries ?? new Map<string, string>() }
}



describe('ReplicatedHash', () => {
  it('readOnce reads the current copy without following changes (no subscription for a one-shot command)', async () => {
    const key = `gh-test-rep-${randomBytes(4).toString('hex')}`
    const writer = replica(key)
    await writer.hash.start()
    await writer.hash.update({ one: '1' })
    const c = client()
    await ready(c)
    const duplicate = jest.spyOn(c, 'duplicate')
    const once = replica(key, c)
    await once.hash.readOnce()
    expect(once.latest().get('one')).toBe('1')
    expect(duplicate).not.toHaveBeenCalled()
    await writer.hash.update({ two: '2' })
    // Real time: what must not come is a notification over Redis pub/sub.
    await new Promise((r) => setTimeout(r, 200))
    expect(once.copies).toHaveLength(1)
  })

  it('a compare-and-set update applies only while the expected fields still hold what was read, and never bumps the version otherwise', async () => {
    const key = `gh-test-rep-${randomBytes(4).toString('hex')}`
    const a = replica(key)
    const b = replica(key)
    await Promise.all([a.hash.start(), b.hash.start()])
    expect(await a.hash.update({ one: 'v1', two: 'w1' })).toBe(true)
    // b changes `one` after a read it: a's write, expecting v1, must not undo it.
    expect(await b.hash.update({ one: 'v2' })).toBe(true)
    const version = b.hash.version
    expect(await a.hash.update({ one: 'a-wins', two: 'w2' }, { one: 'v1' })).toBe(false)
    const raw = client()
    await ready(raw)
    expect(await raw.hgetall(key)).toEqual({ one: 'v2', two: 'w1' })
    expect(Number(await raw.get(`${key}:version`))).toBe(version)
    // Expecting what is there now, it applies.
    expect(await a.hash.update({ one: 'v3' }, { one: 'v2', two: 'w1' })).toBe(true)
    expect(await raw.hgetall(key)).toEqual({ one: 'v3', two: 'w1' })
    expect(a.latest().get('one')).toBe('v3')
    // A field expected but absent is a change too.
    expect(await a.hash.update({ three: 'x' }, { three: 'anything' })).toBe(false)
    expect(await raw.hexists(key, 'three')).toBe(0)
  })

  it('gives every replica a change made through one of them, at once by notification', async () => {
    const key = `gh-test-rep-${randomBytes(4).toString('hex')}`
    const a = replica(key)
    const b = replica(key)
    const c = replica(key)
    await Promise.all([a.hash.start(), b.hash.start(), c.hash.start()])
    await sleep(100) // subscriptions in place (real time: Redis's SUBSCRIBE)
    const sent = Date.now()
    await a.hash.update({ one: '1', two: '2' })
    // The updating replica holds the change when update() resolves.
    expect(a.latest().get('one')).toBe('1')
    for (const r of [b, c]) {
      const ms = await waitFor(() => r.latest().get('two') === '2', 1000, { every: 5 })
      expect(ms).toBeLessThan(500)
    }
    await b.hash.update({ one: null })
    await waitFor(() => !a.latest().has('one') && !c.latest().has('one'), 1000, { every: 5 })
    expect(a.hash.version).toBe(b.hash.version)
    expect(Date.now() - sent).toBeLessThan(1000)
  })

  it('heals a lost notification within resyncMs (a change written behind its back)', async () => {
    clock = fakeClock()
    const key = `gh-test-rep-${randomBytes(4).toString('hex')}`
    const a = replica(key, client(), 300)
    await a.hash.start()
    // A change whose notification nobody hears: the fields and version written directly.
    const raw = client()
    await ready(raw)
    await subscribed(raw, key, clock)
    await raw.multi().hset(key, 'quiet', 'yes').incr(`${key}:version`).exec()
    await clock.advance(299)
    expect(a.latest().get('quiet')).toBeUndefined()
    await clock.advance(1)
    await clock.until(() => a.latest().get('quiet') === 'yes', 2000, 'the resync')
  })

  it('puts its copy back when Redis lost the hash, without undoing what was written since', async () => {
    clock = fakeClock()
    const key = `gh-test-rep-${randomBytes(4).toString('hex')}`
    const a = replica(key, client(), 200)
    await a.hash.start()
    await a.hash.update({ keep: 'me', and: 'me too' })
    await a.hash.update({ and: 'changed' })
    const raw = client()
    await ready(raw)
    await subscribed(raw, key, clock)
    // Redis restarted empty, then someone wrote one field (version 1, below the replica's 2).
    await raw.del(key, `${key}:version`)
    await raw.multi().hset(key, 'new', 'field').incr(`${key}:version`).exec()
    await clock.advance(200)
    await clock.until(() => a.latest().get('new') === 'field' && a.latest().get('keep') === 'me', 3000, 'the resync')
    expect(a.latest().get('and')).toBe('changed')
    expect(Number(await raw.get(`${key}:version`))).toBeGreaterThan(2)
    expect(await raw.hget(key, 'keep')).toBe('me')
  })

  it('refuses a change it cannot make (GH_CORE_SHARED_STATE_UNAVAILABLE, 503) and keeps serving its copy', async () => {
    const key = `gh-test-rep-${randomBytes(4).toString('hex')}`
    const live = replica(key)
    await live.hash.start()
    await live.hash.update({ k: 'v' })
    // A replica whose Redis is gone (a port nothing listens on).
    const b = replica(key, client(1))
    await expect(b.hash.start()).rejects.toMatchObject({ code: 'GH_CORE_SHARED_STATE_UNAVAILABLE', statusCode: 503 })
    await expect(b.hash.update({ k: 'other' })).rejects.toMatchObject({ code: 'GH_CORE_SHARED_STATE_UNAVAILABLE', statusCode: 503 })
    expect(b.hash.lastSyncAt).toBe(0)
    expect(b.hash.freshWithin(60_000)).toBe(false)
    // Nothing was written anywhere.
    expect(live.latest().get('k')).toBe('v')
  })
})

describe('ReplicatedHash: an update racing a snapshot', () => {
  it("holds its own change when update() resolves, even when a snapshot read before the change was still in flight", async () => {
    const key = `gh-test-rep-${randomBytes(4).toString('hex')}`
    const real = client()
    // Every snapshot this replica reads is held back 150 ms after Redis answered: one read before
    // the update lands after it.
    const slow = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop !== 'eval') return Reflect.get(target, prop, receiver) as unknown
        return async (...args: unknown[]) => {
          const result = await (target.eval as (...a: unknown[]) => Promise<unknown>)(...args)
          if (String(args[0]).includes('HGETALL')) await sleep(150)
          return result
        }
      },
    }) as unknown as ReplicatedHashClient
    const a = replica(key, slow, 50)
    const b = replica(key)
    await Promise.all([a.hash.start(), b.hash.start()])
    await sleep(100) // subscriptions in place (real time: Redis's SUBSCRIBE)
    // B's change starts a snapshot on A (its notification); A's own update lands while it reads.
    await b.hash.update({ other: '1' })
    await sleep(20)
    await a.hash.update({ mine: '1' })
    expect(a.latest().get('mine')).toBe('1')
  })
})
