import { createFailureGuard } from '@gatehouse/core'

describe('createFailureGuard', () => {
  const make = (over: Partial<Parameters<typeof createFailureGuard>[0]> = {}) => {
    let t = 1_000_000
    const guard = createFailureGuard({ maxFailures: 5, windowMs: 600_000, banMs: 1_800_000, globalBudget: 1e9, maxBuckets: 10_000, now: () => t, ...over })
    return { guard, advance: (ms: number) => (t += ms) }
  }

  it('bans a bucket at the fifth failure and lifts the ban after banMs', () => {
    const { guard, advance } = make()
    for (let i = 1; i <= 4; i++) expect(guard.fail('203.0.113.9')).toEqual({ count: i, bannedMs: 0 })
    expect(guard.fail('203.0.113.9')).toEqual({ count: 5, bannedMs: 1_800_000 })
    expect(guard.bannedFor('203.0.113.9')).toBe(1_800_000)
    expect(guard.bannedFor('203.0.113.10')).toBe(0)
    advance(1_800_000)
    expect(guard.bannedFor('203.0.113.9')).toBe(0)
    expect(guard.fail('203.0.113.9')).toEqual({ count: 1, bannedMs: 0 })
  })

  it('counts all of loopback as one bucket and an IPv6 /64 as one', () => {
    const { guard } = make()
    for (let i = 0; i < 5; i++) guard.fail(`127.0.${i}.1`)
    expect(guard.bannedFor('127.99.1.2')).toBeGreaterThan(0)
    expect(guard.bannedFor('::1')).toBeGreaterThan(0)
    for (let i = 0; i < 5; i++) guard.fail(`2001:db8:0:1::${i + 1}`)
    expect(guard.bannedFor('2001:db8:0:1:ffff:ffff:ffff:ffff')).toBeGreaterThan(0)
    expect(guard.bannedFor('2001:db8:0:2::1')).toBe(0)
  })

  it('keeps a banned bucket while 10,001 other addresses fill the table (no eviction)', () => {
    const { guard } = make()
    for (let i = 0; i < 5; i++) guard.fail('198.51.100.7')
    for (let i = 0; i < 10_001; i++) guard.fail(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`)
    expect(guard.bannedFor('198.51.100.7')).toBe(1_800_000)
    // Addresses past the bound (9,998 buckets + the banned one + overflow) share one overflow bucket.
    expect(guard.fail('10.200.0.1')).toEqual({ count: 4, bannedMs: 0 })
    expect(guard.fail('10.200.0.2')).toEqual({ count: 5, bannedMs: 1_800_000 })
    expect(guard.bannedFor('10.200.0.3')).toBe(1_800_000)
    expect(guard.bannedFor('10.0.0.1')).toBe(0)
  })

  it('frees buckets whose window and ban are over when the table is full', () => {
    const { guard, advance } = make({ maxBuckets: 4 })
    guard.fail('10.0.0.1')
    guard.fail('10.0.0.2')
    guard.fail('10.0.0.3')
    expect(guard.fail('10.0.0.4').count).toBe(1) // the overflow bucket
    expect(guard.fail('10.0.0.5').count).toBe(2) // the same overflow bucket
    advance(600_000)
    expect(guard.fail('10.0.0.6').count).toBe(1) // its own bucket, after the sweep
  })

  it('bans every wrong key once the global budget is spent', () => {
    const { guard } = make({ globalBudget: 20 })
    for (let i = 0; i < 20; i++) guard.fail(`192.0.2.${i}`)
    expect(guard.bannedFor('192.0.2.200')).toBe(1_800_000)
    expect(guard.bannedFor('::1')).toBe(1_800_000)
  })
})
