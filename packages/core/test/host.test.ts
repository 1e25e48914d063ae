import { HOST_NAME_PATTERN, hostGuard, hostOf, isLoopbackBind } from '@gatehouse/core'

describe('hostGuard', () => {
  const ok = hostGuard({ allowedHosts: ['Gatehouse.Internal', 'gatehouse-metrics'] })

  it.each([
    // IPv4 literals, with and without a port
    '127.0.0.1',
    '127.0.0.1:8317',
    '10.1.2.3',
    '0.0.0.0:1',
    '127.0.0.1:65535',
    // bracketed IPv6 literals
    '[::1]',
    '[::1]:8317',
    '[fe80::1]',
    '[::ffff:127.0.0.1]:80',
    '[0:0:0:0:0:0:0:1]',
    // localhost and *.localhost, any case
    'localhost',
    'localhost:8317',
    'LOCALHOST:1',
    'LocalHost',
    'api.localhost',
    'a.b.localhost:9',
    // configured names, exact, any case, any port
    'gatehouse.internal',
    'GATEHOUSE.INTERNAL:443',
    'gatehouse-metrics',
    'gatehouse-metrics:9090',
  ])('accepts %s', (h) => {
    expect(ok(h)).toBe(true)
  })

  it.each([
    // missing or empty: HTTP/1.1 requires Host
    undefined,
    '',
    ':8317',
    // a name nobody configured: the DNS-rebinding case
    'attacker.example',
    'attacker.example:8317',
    '127.0.0.1.nip.io',
    'localhost.attacker.example',
    'gatehouse.internal.evil.example',
    'evil.gatehouse.internal',
    'gatehouse',
    // trailing dots are refused (one spelling per name)
    'localhost.',
    'localhost.:80',
    'api.localhost.',
    'gatehouse.internal.',
    '.localhost',
    'localhost..',
    // bad ports
    'localhost:',
    'localhost:x',
    'localhost:80:80',
    'localhost:-1',
    'localhost:65536',
    '127.0.0.1:99999999',
    'localhost: 80',
    // broken IPv6
    '[::1',
    '[::1]x',
    '[::1]:',
    '[::1]:80:80',
    '[::1]]',
    '[not-ip]',
    '[127.0.0.1]',
    '[]',
    '::1',
    '[::1%eth0]',
    '[fe80::1%25eth0]:80',
    // IPv4 spellings that are not dotted quads (a resolver may take them; isIP does not)
    '2130706433',
    '0x7f.1',
    '127.1',
    '999.1.1.1',
    // garbage
    ' ',
    ' localhost',
    'localhost ',
    '\u00a0localhost',
    'a b',
    'user@localhost',
    'http://localhost',
    'localhost/x',
    'local_host',
    '-localhost',
    'localhost\u0000',
  ])('refuses %p', (h) => {
    expect(ok(h)).toBe(false)
  })

  it('accepts only IP literals and localhost without allowedHosts', () => {
    const bare = hostGuard()
    expect(['127.0.0.1', '[::1]', 'localhost'].map(bare)).toEqual([true, true, true])
    expect(bare('gatehouse.internal')).toBe(false)
  })

  it.each<[unknown]>([
    ['gatehouse.internal.'],
    ['x:80'],
    ['http://x'],
    ['a b'],
    [''],
    ['a..b'],
    ['-a'],
    [42],
  ])('refuses the allowed name %p with GH_CORE_INVALID_OPTIONS, naming it', (name) => {
    expect(() => hostGuard({ allowedHosts: ['fine', name as string] })).toThrow(
      expect.objectContaining({
        code: 'GH_CORE_INVALID_OPTIONS',
        message: expect.stringContaining('allowedHosts[1]'),
      }),
    )
  })

  it("does not keep a reference to the caller's list", () => {
    const names = ['one.internal']
    const guard = hostGuard({ allowedHosts: names })
    names.push('two.internal')
    expect(guard('two.internal')).toBe(false)
  })

  it('answers a long hostile Host in linear time', () => {
    const long = ['a'.repeat(16_000) + '!', 'a-'.repeat(8_000) + '!', 'aaaa.'.repeat(3_000) + '!']
    const start = process.hrtime.bigint()
    for (const h of long) expect(ok(h)).toBe(false)
    expect(Number(process.hrtime.bigint() - start) / 1e6).toBeLessThan(200)
  })
})

describe('hostOf', () => {
  it.each<[string, string | undefined]>([
    ['Example.COM:80', 'example.com'],
    ['[::1]:1', '::1'],
    ['[FE80::1]', 'fe80::1'],
    ['127.0.0.1', '127.0.0.1'],
    ['exa mple', undefined],
    ['example.com.', undefined],
  ])('reads %p as %p', (header, host) => {
    expect(hostOf(header)).toBe(host)
  })
})

describe('HOST_NAME_PATTERN', () => {
  it('is the rule a schema can use for host names', () => {
    const re = new RegExp(HOST_NAME_PATTERN, 'u')
    expect(
      ['gatehouse', 'Gatehouse.Internal', 'a-b.c1', 'xn--bcher-kva.example'].every((n) => re.test(n)),
    ).toBe(true)
    expect(['', 'a.', 'a..b', '-a', 'a-', 'a_b', 'a:1', 'a b'].some((n) => re.test(n))).toBe(false)
  })
})

describe('isLoopbackBind', () => {
  it.each([
    '127.0.0.1',
    '127.5.5.5',
    '::1',
    '[::1]',
    '0:0:0:0:0:0:0:1',
    '::ffff:127.0.0.1',
    'localhost',
    'LOCALHOST',
  ])('%s is loopback', (h) => {
    expect(isLoopbackBind(h)).toBe(true)
  })

  it.each([
    '0.0.0.0',
    '::',
    '10.0.0.1',
    '192.168.1.1',
    'fe80::1',
    'gatehouse.internal',
    'localhost.attacker.example',
    '',
  ])('%p is not', (h) => {
    expect(isLoopbackBind(h)).toBe(false)
  })
})
