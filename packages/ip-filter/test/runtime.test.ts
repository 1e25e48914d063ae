import { isGatehouseError } from '@gatehouse/core'
import { collectEvents, createTestApp, sleep } from '@gatehouse/testing'
import { ipFilter, MemoryDenylistStore, type IpFilterMiddleware } from '@gatehouse/ip-filter'
import { fakeLogger, send, servers } from './helpers'

const srv = servers()
const filters: IpFilterMiddleware[] = []
afterEach(async () => {
  jest.useRealTimers()
  await srv.closeAll()
  await Promise.all(filters.splice(0).map((f) => f.shutdown()))
})

async function setup(options: Parameters<typeof ipFilter>[0] = {}) {
  const { events, onEvent } = collectEvents()
  const filter = ipFilter({ onEvent, ...options })
  filters.push(filter)
  const app = createTestApp(filter)
  app.set('trust proxy', 'loopback')
  const { url } = await srv.serve(app)
  return { url, filter, events }
}

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string; statusCode?: number }> {
  try {
    await p
  } catch (err) {
    expect(isGatehouseError(err)).toBe(true)
    return err as Error & { code: string; statusCode: number }
  }
  throw new Error('expected a rejection')
}

describe('the runtime denylist (memory store)', () => {
  it('refuses the next request from an added address, lists it, and lets it back after remove', async () => {
    const { url, filter, events } = await setup()
    const xff = { 'x-forwarded-for': '198.51.100.7' }
    expect((await send(url, '/', xff)).status).toBe(200)

    const entry = await filter.add('198.51.100.7', { reason: 'Suspicious activity' })
    expect(entry).toEqual({ ip: '198.51.100.7', reason: 'Suspicious activity', addedAt: expect.any(Date), expiresAt: null })

    const refused = await send(url, '/v1/chat/completions', xff)
    expect(refused.status).toBe(403)
    expect(refused.body).not.toContain('Suspicious')
    expect(refused.body).not.toContain('runtime')
    expect(events).toEqual([
      expect.objectContaining({
        event_type: 'security_violation',
        ip: '198.51.100.7',
        result: 'ip_denied',
        details: expect.objectContaining({ list: 'runtime', rule: 'runtime', entry: '198.51.100.7', reason: 'Suspicious activity' }),
      }),
    ])
    expect(await filter.list()).toEqual([entry])
    expect(filter.check('::ffff:198.51.100.7')).toMatchObject({ allowed: false, list: 'runtime' })

    expect(await filter.remove('::ffff:198.51.100.7')).toBe(true)
    expect(await filter.remove('198.51.100.7')).toBe(false)
    expect((await send(url, '/', xff)).status).toBe(200)
    expect(await filter.list()).toEqual([])
  })

  it('accepts CIDRs and IPv6, in canonical form', async () => {
    const { url, filter } = await setup()
    await filter.add('2001:DB8:0:0::/32', { reason: 'test net' })
    await filter.add('203.0.113.9/24')
    expect((await filter.list()).map((e) => e.ip)).toEqual(['2001:db8::/32', '203.0.113.0/24'])
    expect((await send(url, '/', { 'x-forwarded-for': '2001:db8::99' })).status).toBe(403)
    expect((await send(url, '/', { 'x-forwarded-for': '203.0.113.200' })).status).toBe(403)
    expect((await send(url, '/', { 'x-forwarded-for': '64:ff9b::cb00:7101' })).status).toBe(403)
  })

  it('applies runtime entries before the allowlist (deny wins)', async () => {
    const { url, filter } = await setup({ allowlist: { allowedIps: ['10.0.0.0/8'] } })
    await filter.add('10.9.9.9')
    expect((await send(url, '/', { 'x-forwarded-for': '10.9.9.9' })).status).toBe(403)
    expect((await send(url, '/', { 'x-forwarded-for': '10.9.9.8' })).status).toBe(200)
  })

  it('shares one store between two filters in one process', async () => {
    const store = new MemoryDenylistStore()
    const a = await setup({ store })
    const b = await setup({ store })
    await a.filter.add('192.0.2.55', { reason: 'from a' })
    expect((await send(b.url, '/', { 'x-forwarded-for': '192.0.2.55' })).status).toBe(403)
    expect(b.events[0]).toMatchObject({ details: { reason: 'from a' } })
    await b.filter.remove('192.0.2.55')
    expect((await send(a.url, '/', { 'x-forwarded-for': '192.0.2.55' })).status).toBe(200)
    await store.shutdown()
  })

  it('expires an entry after its TTL (fake timers)', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask', 'hrtime', 'performance'], now: new Date('2026-02-19T23:00:00Z') })
    const { url, filter } = await setup()
    const entry = await filter.add('192.0.2.1', { reason: 'brute force', ttlSeconds: 60 })
    expect(entry.addedAt.toISOString()).toBe('2026-02-19T23:00:00.000Z')
    expect(entry.expiresAt?.toISOString()).toBe('2026-02-19T23:01:00.000Z')
    expect((await send(url, '/', { 'x-forwarded-for': '192.0.2.1' })).status).toBe(403)

    jest.advanceTimersByTime(59_000)
    expect(filter.check('192.0.2.1').allowed).toBe(false)
    expect(await filter.list()).toHaveLength(1)

    jest.advanceTimersByTime(1_000)
    expect(filter.check('192.0.2.1')).toEqual({ allowed: true, result: 'no_rule' })
    expect((await send(url, '/', { 'x-forwarded-for': '192.0.2.1' })).status).toBe(200)
    expect(await filter.list()).toEqual([])
  })

  it('finds a live, narrower entry under an expired, wider one', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask', 'hrtime', 'performance'] })
    const { filter } = await setup()
    await filter.add('192.0.2.0/24', { ttlSeconds: 10 })
    await filter.add('192.0.2.7', { reason: 'permanent' })
    jest.advanceTimersByTime(10_000)
    expect(filter.check('192.0.2.7')).toMatchObject({ allowed: false, entry: '192.0.2.7', reason: 'permanent' })
    expect(filter.check('192.0.2.8').allowed).toBe(true)
  })

  it.each<[unknown, unknown, string, string]>([
    ['10.0.0.0/33', undefined, 'GH_IPF_INVALID_ENTRY', '"10.0.0.0/33" is not a valid address or CIDR'],
    ['not an ip', undefined, 'GH_IPF_INVALID_ENTRY', 'is not a valid address or CIDR'],
    [42, undefined, 'GH_IPF_INVALID_ENTRY', '42 is not a valid address or CIDR'],
    ['10.0.0.1', { ttlSeconds: 0 }, 'GH_IPF_INVALID_ENTRY', 'ttlSeconds must be a number > 0'],
    ['10.0.0.1', { ttlSeconds: -5 }, 'GH_IPF_INVALID_ENTRY', 'ttlSeconds must be a number > 0'],
    ['10.0.0.1', { ttlSeconds: '60' }, 'GH_IPF_INVALID_ENTRY', 'ttlSeconds must be a number > 0'],
    ['10.0.0.1', { ttlSeconds: 1e12 }, 'GH_IPF_INVALID_ENTRY', 'ttlSeconds must be a number > 0'],
    ['10.0.0.1', { reason: 7 }, 'GH_IPF_INVALID_ENTRY', 'reason must be a string'],
    ['10.0.0.1', { reason: 'x'.repeat(501) }, 'GH_IPF_INVALID_ENTRY', 'reason must be a string of at most 500'],
    ['10.0.0.1', { ttl: 60 }, 'GH_IPF_INVALID_ENTRY', 'add() has no option "ttl"'],
  ])('add(%j, %j) rejects with %s (400)', async (ip, opts, code, message) => {
    const { filter } = await setup()
    const err = await rejection(filter.add(ip as string, opts as never))
    expect(err).toMatchObject({ code, statusCode: 400 })
    expect(err.message).toContain(message)
    expect(await filter.list()).toEqual([])
  })

  it('refuses a runtime entry that denies everything next to an allowlist', async () => {
    const { filter } = await setup({ allowlist: { allowedIps: ['10.0.0.0/8'] } })
    const err = await rejection(filter.add('0.0.0.0/0'))
    expect(err).toMatchObject({ code: 'GH_IPF_DENY_EVERYTHING', statusCode: 400 })
    expect(err.message).toContain('allowlist.denyAll')
  })

  it('remove() rejects an invalid address', async () => {
    const { filter } = await setup()
    expect(await rejection(filter.remove('nope'))).toMatchObject({ code: 'GH_IPF_INVALID_ENTRY' })
  })

  it('logs additions and removals', async () => {
    const logger = fakeLogger()
    const { filter } = await setup({ logger })
    await filter.add('192.0.2.3', { reason: 'r' })
    await filter.remove('192.0.2.3')
    expect(logger.info).toHaveBeenCalledWith('@gatehouse/ip-filter: runtime denylist entry added', { ip: '192.0.2.3', reason: 'r', expiresAt: null })
    expect(logger.info).toHaveBeenCalledWith('@gatehouse/ip-filter: runtime denylist entry removed', { ip: '192.0.2.3' })
  })

  it('serves a request that arrives before the first load of a slow store once it has loaded', async () => {
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const inner = new MemoryDenylistStore()
    await inner.add({ ip: '192.0.2.77', reason: 'preloaded', addedAt: new Date(), expiresAt: null })
    const slow = {
      list: async () => {
        await gate
        return inner.list()
      },
      add: (e: Parameters<typeof inner.add>[0]) => inner.add(e),
      remove: (ip: string) => inner.remove(ip),
      subscribe: (l: () => void) => inner.subscribe(l),
      shutdown: () => inner.shutdown(),
    }
    const { url, filter } = await setup({ store: slow })
    const pending = send(url, '/', { 'x-forwarded-for': '192.0.2.77' })
    await sleep(50)
    release()
    expect((await pending).status).toBe(403)
    await filter.ready()
  })
})
