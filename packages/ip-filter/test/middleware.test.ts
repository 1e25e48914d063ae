import { collectEvents, createTestApp, hasIpv6Loopback } from '@gatehouse/testing'
import { ipFilter, type IpFilterMiddleware, type IpFilterOptions } from '@gatehouse/ip-filter'
import { fakeLogger, send, servers } from './helpers'

const srv = servers()
const filters: IpFilterMiddleware[] = []
afterEach(async () => {
  await srv.closeAll()
  await Promise.all(filters.splice(0).map((f) => f.shutdown()))
})

function setup(options: IpFilterOptions, trustProxy: unknown = false) {
  const { events, onEvent } = collectEvents()
  const filter = ipFilter({ onEvent, ...options })
  filters.push(filter)
  const app = createTestApp(filter)
  app.set('trust proxy', trustProxy)
  return { app, filter, events }
}

const OPENAI = '/v1/chat/completions'
const FORBIDDEN_OPENAI = { error: { message: 'Access denied.', type: 'invalid_request_error', param: null, code: 'forbidden' } }

/** The refusal must not reveal which rule matched, or the list. */
function expectNoRuleLeak(body: string, ...secrets: string[]): void {
  for (const s of ['denylist', 'allowlist', 'runtime', ...secrets]) expect(body).not.toContain(s)
}

describe('ipFilter over real requests', () => {
  it('refuses a denied address with 403 in the OpenAI shape, no-store, no rule in the body, and an event', async () => {
    const { app, events } = setup({ denylist: { deniedIps: ['192.0.2.0/24', '127.0.0.0/8'] } })
    const { url } = await srv.serve(app)
    const r = await send(url, `${OPENAI}?x=1`)
    expect(r.status).toBe(403)
    expect(r.json).toEqual(FORBIDDEN_OPENAI)
    expect(r.headers['cache-control']).toBe('no-store')
    expect(r.headers['content-type']).toMatch(/^application\/json/)
    expectNoRuleLeak(r.body, '127.0.0.0', '127.0.0.1')
    expect(events).toHaveLength(1)
    expect(events[0]).toMatchObject({
      event_type: 'security_violation',
      provider: 'openai',
      ip: '127.0.0.1',
      result: 'ip_denied',
      details: { list: 'denylist', rule: 'denylist.deniedIps[1]', entry: '127.0.0.0/8', address: '127.0.0.1', method: 'GET', path: OPENAI },
    })
    expect(typeof events[0]!.timestamp).toBe('string')
  })

  it.each<[string, Record<string, string>, unknown]>([
    ['/v1/messages', {}, { type: 'error', error: { type: 'permission_error', message: 'Access denied.' } }],
    ['/v1beta/models/gemini-pro:generateContent', {}, { error: { code: 403, message: 'Access denied.', status: 'PERMISSION_DENIED' } }],
    ['/claude/v1/messages', {}, { type: 'error', error: { type: 'permission_error', message: 'Access denied.' } }],
    ['/healthz', { 'anthropic-version': '2023-06-01' }, { type: 'error', error: { type: 'permission_error', message: 'Access denied.' } }],
    ['/healthz', {}, FORBIDDEN_OPENAI],
  ])('answers %s in the provider-native shape', async (path, headers, body) => {
    const { app, events } = setup({ denylist: ['127.0.0.1'] })
    const { url } = await srv.serve(app)
    const r = await send(url, path, headers)
    expect(r.status).toBe(403)
    expect(r.json).toEqual(body)
    expect(events).toHaveLength(1)
  })

  it('lets an allowlisted address through and records the decision in res.locals.gatehouse.ipFilter', async () => {
    const { app, events } = setup({ allowlist: { allowedIps: ['10.0.0.0/8', '127.0.0.1'] } })
    const { url } = await srv.serve(app)
    const r = await send(url, OPENAI)
    expect(r.status).toBe(200)
    expect(r.json).toMatchObject({
      ok: true,
      locals: { ipFilter: { ip: '127.0.0.1', allowed: true, result: 'allowlisted', list: 'allowlist', rule: 'allowlist.allowedIps[1]', entry: '127.0.0.1' } },
    })
    expect(events).toEqual([])
  })

  it('lets everyone through when no list matches and there is no allowlist', async () => {
    const { app } = setup({ denylist: ['192.0.2.0/24'] })
    const { url } = await srv.serve(app)
    const r = await send(url)
    expect(r.status).toBe(200)
    expect(r.json).toMatchObject({ locals: { ipFilter: { ip: '127.0.0.1', allowed: true, result: 'no_rule' } } })
  })

  it('refuses an address the enabled allowlist does not match', async () => {
    const { app, events } = setup({ allowlist: { allowedIps: ['10.0.0.0/8'] } })
    const { url } = await srv.serve(app)
    const r = await send(url, '/v1/messages')
    expect(r.status).toBe(403)
    expect(r.json).toEqual({ type: 'error', error: { type: 'permission_error', message: 'Access denied.' } })
    expectNoRuleLeak(r.body, '10.0.0.0')
    expect(events).toEqual([
      expect.objectContaining({ event_type: 'security_violation', provider: 'claude', ip: '127.0.0.1', result: 'ip_not_allowed' }),
    ])
    expect(events[0]!.details).toEqual({ address: '127.0.0.1', method: 'GET', path: '/v1/messages' })
  })

  it('refuses everyone with denyAll and an empty allowlist', async () => {
    const { app, events } = setup({ allowlist: { allowedIps: [], denyAll: true } })
    const { url } = await srv.serve(app)
    expect((await send(url)).status).toBe(403)
    expect(events[0]).toMatchObject({ result: 'ip_not_allowed' })
  })

  it('lets deny win over allow', async () => {
    const { app, events } = setup({ allowlist: { allowedIps: ['10.0.0.0/8'] }, denylist: ['10.1.0.0/16'] }, 'loopback')
    const { url } = await srv.serve(app)
    const denied = await send(url, '/', { 'x-forwarded-for': '10.1.2.3' })
    const allowed = await send(url, '/', { 'x-forwarded-for': '10.2.0.1' })
    expect(denied.status).toBe(403)
    expect(allowed.status).toBe(200)
    expect(events).toHaveLength(1)
    expect(events[0]).toMatchObject({ ip: '10.1.2.3', result: 'ip_denied', details: { rule: 'denylist[0]', entry: '10.1.0.0/16' } })
  })

  it('passes the request id and client key id through to the event', async () => {
    const { events, onEvent } = collectEvents()
    const filter = ipFilter({ denylist: ['127.0.0.1'], onEvent })
    filters.push(filter)
    const app = createTestApp((_req, res, next) => {
      res.locals.gatehouse = { requestId: 'req-123', clientKeyId: 'key_0011aabb' }
      next()
    }, filter)
    const { url } = await srv.serve(app)
    expect((await send(url)).status).toBe(403)
    expect(events[0]).toMatchObject({ request_id: 'req-123', user_id: 'key_0011aabb' })
  })

  it('still refuses, and logs, when the onEvent handler throws', async () => {
    const logger = fakeLogger()
    const filter = ipFilter({ denylist: ['127.0.0.1'], logger, onEvent: () => { throw new Error('sink down') } })
    filters.push(filter)
    const { url } = await srv.serve(createTestApp(filter))
    const r = await send(url)
    expect(r.status).toBe(403)
    expect(logger.error).toHaveBeenCalledWith('@gatehouse/ip-filter: the onEvent handler threw', { error: 'sink down' })
  })
})

describe('the client address comes from Express trust proxy, never from X-Forwarded-For directly', () => {
  it('ignores a spoofed X-Forwarded-For when the proxy is not trusted', async () => {
    const { app, events } = setup({ denylist: ['10.0.0.0/8'] }, false)
    const { url } = await srv.serve(app)
    const r = await send(url, '/', { 'x-forwarded-for': '10.0.0.1' })
    expect(r.status).toBe(200)
    expect(r.json).toMatchObject({ locals: { ipFilter: { ip: '127.0.0.1', result: 'no_rule' } } })
    expect(events).toEqual([])
  })

  it('does not let a spoofed X-Forwarded-For into the allowlist when the proxy is not trusted', async () => {
    const { app, events } = setup({ allowlist: { allowedIps: ['10.0.0.0/8'] } }, false)
    const { url } = await srv.serve(app)
    const r = await send(url, '/', { 'x-forwarded-for': '10.0.0.1' })
    expect(r.status).toBe(403)
    expect(events[0]).toMatchObject({ ip: '127.0.0.1', result: 'ip_not_allowed' })
  })

  it('honours X-Forwarded-For from a trusted proxy (trust proxy: loopback)', async () => {
    const { app, events } = setup({ denylist: ['10.0.0.0/8'] }, 'loopback')
    const { url } = await srv.serve(app)
    const r = await send(url, '/', { 'x-forwarded-for': '10.0.0.1' })
    expect(r.status).toBe(403)
    expect(events[0]).toMatchObject({ ip: '10.0.0.1', result: 'ip_denied' })
  })

  it('with a hop count, uses the address the last trusted hop saw, not what the client wrote first', async () => {
    const { app, events } = setup({ denylist: ['192.0.2.0/24'] }, 1)
    const { url } = await srv.serve(app)
    const spoofed = await send(url, '/', { 'x-forwarded-for': '192.0.2.9, 198.51.100.7' })
    expect(spoofed.status).toBe(200)
    expect(spoofed.json).toMatchObject({ locals: { ipFilter: { ip: '198.51.100.7' } } })
    const real = await send(url, '/', { 'x-forwarded-for': '198.51.100.7, 192.0.2.9' })
    expect(real.status).toBe(403)
    expect(events).toEqual([expect.objectContaining({ ip: '192.0.2.9' })])
  })

  it('refuses an address that is not an IP (garbage forwarded by a trusted proxy)', async () => {
    const { app, events } = setup({ denylist: ['192.0.2.0/24'] }, 'loopback')
    const { url } = await srv.serve(app)
    const r = await send(url, '/', { 'x-forwarded-for': 'garbage' })
    expect(r.status).toBe(403)
    expect(r.json).toEqual(FORBIDDEN_OPENAI)
    expect(events[0]).toMatchObject({ ip: 'garbage', result: 'invalid_address' })
  })

  it('warns once when the app trusts every hop', async () => {
    const logger = fakeLogger()
    const filter = ipFilter({ logger })
    filters.push(filter)
    const app = createTestApp(filter)
    app.set('trust proxy', true)
    const { url } = await srv.serve(app)
    await send(url)
    await send(url)
    const warnings = logger.warn.mock.calls.filter((c) => String(c[0]).includes("'trust proxy' is true"))
    expect(warnings).toHaveLength(1)
  })
})

describe('every notation of an address matches', () => {
  it.each<[string, string | undefined]>([
    ['10.0.0.1', undefined],
    ['::ffff:10.0.0.1', undefined],
    ['::ffff:a00:1', undefined],
    ['::10.0.0.1', '10.0.0.1'],
    ['64:ff9b::a00:1', '10.0.0.1'],
    ['64:ff9b::10.0.0.1', '10.0.0.1'],
    ['2002:a00:1::1', '10.0.0.1'],
  ])('a denied 10.0.0.0/8 refuses %s', async (xff, matchedAs) => {
    const { app, events } = setup({ denylist: ['10.0.0.0/8'] }, 'loopback')
    const { url } = await srv.serve(app)
    const r = await send(url, '/', { 'x-forwarded-for': xff })
    expect(r.status).toBe(403)
    expect(events).toHaveLength(1)
    expect(events[0]!.details).toMatchObject({ entry: '10.0.0.0/8' })
    expect((events[0]!.details as Record<string, unknown>).matched_as).toBe(matchedAs)
  })

  it('a denied ::ffff:10.0.0.0/104 (written as IPv6) refuses 10.0.0.1', async () => {
    const { app } = setup({ denylist: ['::ffff:10.0.0.0/104'] }, 'loopback')
    const { url } = await srv.serve(app)
    expect((await send(url, '/', { 'x-forwarded-for': '10.0.0.1' })).status).toBe(403)
  })

  it('an IPv6 entry matches the IPv6 form of an address that also embeds IPv4', async () => {
    const { app, events } = setup({ denylist: ['64:ff9b::/96'] }, 'loopback')
    const { url } = await srv.serve(app)
    expect((await send(url, '/', { 'x-forwarded-for': '64:ff9b::c000:201' })).status).toBe(403)
    expect((await send(url, '/', { 'x-forwarded-for': '192.0.2.1' })).status).toBe(200)
    expect(events[0]).toMatchObject({ details: { entry: '64:ff9b::/96' } })
  })

  it.each<[string, boolean, number]>([
    ['::ffff:10.0.0.1', true, 200],
    ['2002:a00:1::1', true, 200],
    ['64:ff9b::a00:1', true, 200],
    ['::ffff:10.0.0.1', false, 200],
    ['2002:a00:1::1', false, 403],
    ['64:ff9b::a00:1', false, 403],
    ['::10.0.0.1', false, 403],
  ])('an allowlisted 10.0.0.0/8 answers %s with allowEmbeddedIpv4 %s: %d', async (xff, allowEmbeddedIpv4, status) => {
    const { app } = setup({ allowlist: { allowedIps: ['10.0.0.0/8'] }, allowEmbeddedIpv4 }, 'loopback')
    const { url } = await srv.serve(app)
    expect((await send(url, '/', { 'x-forwarded-for': xff })).status).toBe(status)
  })

  it('a server listening on :: sees IPv4 clients as ::ffff:127.0.0.1, which 127.0.0.0/8 matches', async () => {
    const { app, events } = setup({ denylist: ['127.0.0.0/8'] })
    const { port } = await srv.serve(app, '::')
    const r = await send(`http://127.0.0.1:${port}`)
    expect(r.status).toBe(403)
    expect(events[0]).toMatchObject({ ip: '127.0.0.1', details: { entry: '127.0.0.0/8' } })
  })
})

const v6it = hasIpv6Loopback ? it : it.skip

describe('IPv6 over ::1', () => {
  v6it('refuses a denied ::1 when the client connects to [::1]', async () => {
    const { app, events } = setup({ denylist: { deniedIps: ['2001:db8::/32', '::1/128'] } })
    const { url } = await srv.serve(app, '::1')
    expect(url).toMatch(/^http:\/\/\[::1\]:/)
    const r = await send(url, '/v1/messages')
    expect(r.status).toBe(403)
    expect(r.json).toEqual({ type: 'error', error: { type: 'permission_error', message: 'Access denied.' } })
    expectNoRuleLeak(r.body, '::1')
    expect(events[0]).toMatchObject({ ip: '::1', result: 'ip_denied', details: { rule: 'denylist.deniedIps[1]', entry: '::1' } })
  })

  v6it('allows ::1 through an IPv6 allowlist and refuses it when only IPv4 is allowed', async () => {
    const allowed = setup({ allowlist: { allowedIps: ['10.0.0.0/8', '::1'] } })
    const a = await srv.serve(allowed.app, '::1')
    const r = await send(a.url)
    expect(r.status).toBe(200)
    expect(r.json).toMatchObject({ locals: { ipFilter: { ip: '::1', result: 'allowlisted', entry: '::1' } } })

    const v4only = setup({ allowlist: { allowedIps: ['127.0.0.0/8'] } })
    const b = await srv.serve(v4only.app, '::1')
    expect((await send(b.url)).status).toBe(403)
    expect(v4only.events[0]).toMatchObject({ ip: '::1', result: 'ip_not_allowed' })
  })
})
