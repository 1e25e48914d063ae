import { ipKeyGenerator } from 'express-rate-limit'
import { ipKey } from '@gatehouse/rate-limit'

const ADDRESSES = [
  '::1',
  '::',
  '2001:db8::1',
  '::ffff:10.1.2.3',
  '::FFFF:A01:203',
  '2001:DB8:AAAA:BBCC:1:2:3:4',
  '1:2:3:4:5:6:7:8',
  '::1.2.3.4',
  '64:ff9b::192.0.2.33',
  '1::',
  '2001:db8:0:ff::1',
  '2001:0:0:1:0:0:0:1',
  '0:0:1:0:0:1:0:0',
]

describe('ipKey', () => {
  it.each(ADDRESSES.flatMap((ip) => [56, 64, 48, 32, 1, 127, 128].map((subnet) => [ip, subnet] as const)))(
    'keys %s /%d exactly as express-rate-limit ipKeyGenerator does',
    (ip, subnet) => {
      expect(ipKey(ip, subnet)).toBe(ipKeyGenerator(ip, subnet))
    },
  )

  it.each<[string | undefined, number | false, string]>([
    ['10.0.0.1', 56, '10.0.0.1'],
    ['::ffff:10.0.0.1', 56, '10.0.0.1'],
    ['[2001:db8::5]', 56, '2001:db8::/56'],
    ['fe80::1%eth0', 64, 'fe80::/64'],
    ['2001:db8:0:1ff::9', false, '2001:db8:0:1ff::9/128'],
    [undefined, 56, 'unknown'],
    ['', 56, 'unknown'],
    ['not-an-ip', 56, 'invalid'],
    ['10.0.0.1, 10.0.0.2', 56, 'invalid'],
  ])('keys %j (subnet %j) as %s', (ip, subnet, key) => {
    expect(ipKey(ip, subnet)).toBe(key)
  })
})
