import { ipFilter, MemoryDenylistStore, resolveIpFilterConfig, type IpFilterOptions } from '@gatehouse/ip-filter'
import { thrownGatehouseError } from '@gatehouse/testing'

function fakeLogger(): { logger: { error: jest.Mock; warn: jest.Mock; info: jest.Mock; debug: jest.Mock }; warned: () => string[] } {
  const logger = { error: jest.fn(), warn: jest.fn(), info: jest.fn(), debug: jest.fn() }
  return { logger, warned: () => logger.warn.mock.calls.map((c) => String(c[0])) }
}

describe('ipFilter options', () => {
  it.each<[unknown, string, string]>([
    [{ allowlist: { allowedIps: ['10.0.0.0/8', '192.168.1.1', '10.0.0.0/33'] } }, 'GH_IPF_INVALID_CIDR', '@gatehouse/ip-filter: allowlist.allowedIps[2] is not a valid CIDR ("10.0.0.0/33")'],
    [{ denylist: { deniedIps: ['2001:db8::/129'] } }, 'GH_IPF_INVALID_CIDR', 'denylist.deniedIps[0] is not a valid CIDR ("2001:db8::/129")'],
    [{ denylist: ['192.0.2.0/24', 'nope'] }, 'GH_IPF_INVALID_CIDR', 'denylist[1] is not a valid CIDR ("nope")'],
    [{ allowlist: { allowedIps: [42] } }, 'GH_IPF_INVALID_OPTIONS', 'allowlist.allowedIps[0]: must be string (got 42)'],
    [{ allowlist: { allowedIPs: ['10.0.0.0/8'] } }, 'GH_IPF_UNKNOWN_OPTION', 'allowlist.allowedIPs: unknown key (did you mean "allowedIps"?)'],
    [{ denylist: { deniedIp: ['10.0.0.0/8'] } }, 'GH_IPF_UNKNOWN_OPTION', 'did you mean "deniedIps"?'],
    [{ allowList: {} }, 'GH_IPF_UNKNOWN_OPTION', 'allowList: unknown key (did you mean "allowlist"?)'],
    [{ onStoreError: 'ignore' }, 'GH_IPF_INVALID_OPTIONS', 'onStoreError: must be one of "allow", "deny"'],
    [{ allowEmbeddedIpv4: 'yes' }, 'GH_IPF_INVALID_OPTIONS', 'allowEmbeddedIpv4: must be boolean'],
    [{ store: { list: () => [] } }, 'GH_IPF_STORE_INVALID', 'store must implement list, add, remove, subscribe and shutdown'],
    [{ logger: console.log }, 'GH_IPF_INVALID_OPTIONS', 'logger must have error, warn, info and debug'],
    [{ onEvent: 'audit' }, 'GH_IPF_INVALID_OPTIONS', 'onEvent must be a function'],
    [{ allowlist: { enabled: true } }, 'GH_IPF_EMPTY_ALLOWLIST', 'allowlist.allowedIps is empty'],
    [{ headers: {}, method: 'GET', url: '/' }, 'GH_IPF_NOT_CALLED', 'without being called'],
  ])('rejects %j with %s', (options, code, message) => {
    const err = thrownGatehouseError(() => ipFilter(options as IpFilterOptions))
    expect(err.code).toBe(code)
    expect(err.message.startsWith('@gatehouse/ip-filter: ')).toBe(true)
    expect(err.message).toContain(message)
  })

  it.each<[string, IpFilterOptions['denylist']]>([
    ['0.0.0.0/0 in the object form', { deniedIps: ['192.0.2.0/24', '0.0.0.0/0'] }],
    ['::/0 in the bare-list form', ['::/0']],
    ['::ffff:0:0/96 (all of IPv4, written as IPv6)', ['::ffff:0:0/96']],
  ])('refuses an everything-denylist (%s) next to an enabled allowlist, pointing at denyAll', (_name, denylist) => {
    const err = thrownGatehouseError(() => ipFilter({ allowlist: { allowedIps: ['10.0.0.0/8'] }, denylist }))
    expect(err.code).toBe('GH_IPF_DENY_EVERYTHING')
    expect(err.message).toMatch(/denies every IPv[46] address/)
    expect(err.message).toContain('deny rules always win')
    expect(err.message).toContain('allowlist.denyAll: true (ip_allowlist.deny_all)')
  })

  it('accepts an everything-denylist without an allowlist (a lockdown), with a warning', () => {
    const { logger, warned } = fakeLogger()
    const f = ipFilter({ denylist: ['0.0.0.0/0'], logger })
    expect(f.check('192.0.2.1')).toMatchObject({ allowed: false, result: 'ip_denied' })
    expect(warned().join('\n')).toContain('refuses every IPv4 address')
    void f.shutdown()
  })

  it('accepts an everything-denylist when the allowlist is disabled', () => {
    expect(() => ipFilter({ allowlist: { enabled: false, allowedIps: ['10.0.0.0/8'] }, denylist: ['0.0.0.0/0'] })).not.toThrow()
  })

  it('accepts an empty allowlist with denyAll (everyone refused)', () => {
    const f = ipFilter({ allowlist: { allowedIps: [], denyAll: true } })
    expect(f.check('10.0.0.1')).toEqual({ allowed: false, result: 'ip_not_allowed' })
    void f.shutdown()
  })

  it('warns about a deny entry that covers an allow entry, and about host bits', () => {
    const { logger, warned } = fakeLogger()
    const f = ipFilter({ allowlist: { allowedIps: ['10.1.0.0/16', '10.9.9.9/8'] }, denylist: ['10.0.0.0/8'], logger })
    const text = warned().join('\n')
    expect(text).toContain('denylist[0] (10.0.0.0/8) covers allowlist.allowedIps[0] (10.1.0.0/16)')
    expect(text).toContain('allowlist.allowedIps[1] ("10.9.9.9/8") has host bits set; it is read as 10.0.0.0/8')
    void f.shutdown()
  })

  it('warns that denyAll does nothing while the allowlist is disabled', () => {
    const { logger, warned } = fakeLogger()
    void ipFilter({ allowlist: { enabled: false, denyAll: true }, logger }).shutdown()
    expect(warned().join('\n')).toContain('allowlist.denyAll is set but the allowlist is disabled')
  })

  it('treats undefined like an omitted option and never mutates the input', () => {
    const input: IpFilterOptions = { allowlist: { allowedIps: ['10.0.0.0/8'], denyAll: undefined }, denylist: undefined, onStoreError: undefined }
    const before = JSON.stringify(input)
    const config = resolveIpFilterConfig(input)
    expect(JSON.stringify(input)).toBe(before)
    expect(Object.keys(input.allowlist!)).toEqual(['allowedIps', 'denyAll'])
    expect(config.onStoreError).toBe('allow')
    expect(config.allowlistEnabled).toBe(true)
    expect(Object.isFrozen(config)).toBe(true)
    expect(Object.isFrozen(config.allow)).toBe(true)
  })

  it('maps the config keys directly: enabled flags, the bare list, and defaults', () => {
    expect(resolveIpFilterConfig({}).allowlistEnabled).toBe(false)
    expect(resolveIpFilterConfig({ allowlist: { enabled: false, allowedIps: ['10.0.0.0/8'] } }).allow).toEqual([])
    expect(resolveIpFilterConfig({ denylist: { enabled: false, deniedIps: ['10.0.0.0/8'] } }).deny).toEqual([])
    expect(resolveIpFilterConfig({ denylist: { deniedIps: ['10.0.0.0/8'] } }).deny.map((r) => r.rule)).toEqual(['denylist.deniedIps[0]'])
    expect(resolveIpFilterConfig({ denylist: ['10.0.0.0/8'] }).deny.map((r) => r.rule)).toEqual(['denylist[0]'])
    const store = new MemoryDenylistStore()
    const c = resolveIpFilterConfig({ store })
    expect(c.store).toBe(store)
    expect(c.ownStore).toBe(false)
  })
})
