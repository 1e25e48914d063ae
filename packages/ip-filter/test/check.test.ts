import { ipFilter } from '@gatehouse/ip-filter'

describe('check(ip): the synchronous decision, in every notation', () => {
  const filter = ipFilter({
    allowlist: { allowedIps: ['192.0.2.0/24', '2001:db8::/32', 'fe80::/10'] },
    denylist: ['10.0.0.0/8', '2001:db8:bad::/48'],
  })
  afterAll(() => filter.shutdown())

  it.each<[string, boolean, string, string | undefined]>([
    ['10.0.0.1', false, 'ip_denied', undefined],
    ['::ffff:10.0.0.1', false, 'ip_denied', undefined],
    ['::FFFF:0A00:0001', false, 'ip_denied', undefined],
    ['0:0:0:0:0:ffff:a00:1', false, 'ip_denied', undefined],
    ['[::ffff:10.0.0.1]', false, 'ip_denied', undefined],
    ['10.1', false, 'ip_denied', undefined],
    ['012.0.0.1', false, 'ip_denied', undefined],
    ['::10.0.0.1', false, 'ip_denied', '10.0.0.1'],
    ['64:ff9b::a00:1', false, 'ip_denied', '10.0.0.1'],
    ['2002:a00:1::1', false, 'ip_denied', '10.0.0.1'],
    ['192.0.2.1', true, 'allowlisted', undefined],
    ['::ffff:192.0.2.1', true, 'allowlisted', undefined],
    ['64:ff9b::192.0.2.1', true, 'allowlisted', '192.0.2.1'],
    ['2002:c000:201::', true, 'allowlisted', '192.0.2.1'],
    ['2001:db8::1', true, 'allowlisted', undefined],
    ['2001:DB8:0:0:0:0:0:1', true, 'allowlisted', undefined],
    ['2001:db8:bad::1', false, 'ip_denied', undefined],
    ['fe80::1%eth0', true, 'allowlisted', undefined],
    ['198.51.100.1', false, 'ip_not_allowed', undefined],
    ['::1', false, 'ip_not_allowed', undefined],
    ['::', false, 'ip_not_allowed', undefined],
    ['garbage', false, 'invalid_address', undefined],
    ['', false, 'invalid_address', undefined],
    ['1.2.3.4.5', false, 'invalid_address', undefined],
  ])('%s → allowed %s (%s), matched as %s', (ip, allowed, result, matchedAs) => {
    const d = filter.check(ip)
    expect(d.allowed).toBe(allowed)
    expect(d.result).toBe(result)
    expect(d.matchedAs).toBe(matchedAs)
  })

  it('returns frozen decisions that cannot be altered by the caller', () => {
    const d = filter.check('10.0.0.1')
    expect(Object.isFrozen(d)).toBe(true)
    expect(d).toEqual({ allowed: false, result: 'ip_denied', list: 'denylist', rule: 'denylist[0]', entry: '10.0.0.0/8' })
  })

  it('refuses a non-string', () => {
    expect(filter.check(undefined as unknown as string)).toEqual({ allowed: false, result: 'invalid_address' })
  })
})
