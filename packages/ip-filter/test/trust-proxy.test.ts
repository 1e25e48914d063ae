import { isGatehouseError } from '@gatehouse/core'
import { createTestApp } from '@gatehouse/testing'
import { ipFilter, validateTrustProxy } from '@gatehouse/ip-filter'
import { send, servers } from './helpers'

const srv = servers()
afterEach(() => srv.closeAll())

describe('validateTrustProxy', () => {
  it.each<[unknown, unknown]>([
    [undefined, false],
    [null, false],
    [false, false],
    [0, 0],
    [1, 1],
    [2, 2],
    [[], false],
    ['loopback', ['loopback']],
    ['10.0.0.0/8, 192.168.1.1', ['10.0.0.0/8', '192.168.1.1']],
    [['10.0.0.0/8', '::1', 'uniquelocal', 'linklocal'], ['10.0.0.0/8', '::1', 'uniquelocal', 'linklocal']],
    [['2001:DB8::/32', '::ffff:10.0.0.0/104'], ['2001:db8::/32', '10.0.0.0/8']],
  ])('accepts %j as %j', (value, expected) => {
    expect(validateTrustProxy(value)).toEqual(expected)
  })

  it.each<[unknown, string]>([
    [true, 'server.trust_proxy is true, which trusts every hop, so any client could forge X-Forwarded-For and pick its own address'],
    ['true', 'is true, which trusts every hop'],
    [['0.0.0.0/0'], 'server.trust_proxy[0] ("0.0.0.0/0") trusts every address, the same as true'],
    ['10.0.0.0/8, ::/0', 'server.trust_proxy[1] ("::/0") trusts every address'],
    [-1, 'is not a valid hop count (got -1)'],
    [1.5, 'is not a valid hop count (got 1.5)'],
    [['10.0.0.0/33'], 'server.trust_proxy[0] is not a valid address or CIDR (got "10.0.0.0/33")'],
    [[7], 'server.trust_proxy[0] is not a valid address or CIDR (got 7)'],
    [{ hops: 1 }, 'has an unsupported type (got {"hops":1})'],
    [() => true, 'has an unsupported type (got a function)'],
  ])('refuses %j', (value, message) => {
    let err: unknown
    try {
      validateTrustProxy(value, 'server.trust_proxy')
    } catch (e) {
      err = e
    }
    expect(isGatehouseError(err)).toBe(true)
    expect(err).toMatchObject({ code: 'GH_IPF_TRUST_PROXY' })
    const msg = (err as Error).message
    expect(msg.startsWith('@gatehouse/ip-filter: ')).toBe(true)
    expect(msg).toContain(message)
    expect(msg).toContain("it must be false, a hop count (the number of proxies in front of the gateway, e.g. 1) or a list of the proxies' addresses or CIDRs")
  })

  it('names the setting trustProxy by default', () => {
    expect(() => validateTrustProxy(true)).toThrow('@gatehouse/ip-filter: trustProxy is true')
  })

  it.each<[unknown, number]>([
    [false, 200],
    [['192.0.2.0/24'], 200],
    [['127.0.0.1'], 403],
    ['loopback', 403],
    [1, 403],
  ])('the validated value %j works as Express trust proxy (spoofed XFF from 127.0.0.1: %d)', async (value, status) => {
    const filter = ipFilter({ denylist: ['10.0.0.0/8'] })
    const app = createTestApp(filter)
    app.set('trust proxy', validateTrustProxy(value))
    const { url } = await srv.serve(app)
    expect((await send(url, '/', { 'x-forwarded-for': '10.0.0.1' })).status).toBe(status)
    await filter.shutdown()
  })
})
