import { addressBucket } from '@gatehouse/core'

describe('addressBucket', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.45.3.9', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.9.9.9', 'loopback'],
    ['[::1]', 'loopback'],
    ['203.0.113.9', '203.0.113.9'],
    ['::ffff:203.0.113.9', '203.0.113.9'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::ffff', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002:aaaa::1', '2001:db8:1:2::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['not-an-address', 'unknown'],
    [undefined, 'unknown'],
  ])('puts %s in bucket %s', (ip, bucket) => {
    expect(addressBucket(ip)).toBe(bucket)
  })
})
