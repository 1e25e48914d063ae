import type { SecurityEvent } from '@gatehouse/core'
import { createEventBuffer } from '@gatehouse/dashboard'

describe('createEventBuffer', () => {
  const ev = (i: number, type: SecurityEvent['event_type'] = 'auth_failure', ip = `192.0.2.${i % 3}`, user_id?: string): SecurityEvent => ({
    timestamp: new Date(1_700_000_000_000 + i).toISOString(),
    event_type: type,
    ip,
    request_id: `r${i}`,
    ...(user_id ? { user_id } : {}),
  })

  it('keeps the last `size` events, newest first', () => {
    const b = createEventBuffer({ size: 3 })
    for (let i = 0; i < 5; i++) b.record(ev(i))
    expect(b.recentEvents(10).map((e) => e.request_id)).toEqual(['r4', 'r3', 'r2'])
    expect(b.recentEvents(2).map((e) => e.request_id)).toEqual(['r4', 'r3'])
    b.clear()
    expect(b.recentEvents(10)).toEqual([])
  })

  it('counts refusals (auth_failure, security_violation) per address and key, most first', () => {
    const b = createEventBuffer({ top: 2 })
    b.record(ev(1, 'auth_failure', '203.0.113.1', 'key_aaaa0001'))
    b.record(ev(2, 'auth_failure', '203.0.113.1', 'key_aaaa0001'))
    b.record(ev(3, 'security_violation', '203.0.113.2'))
    b.record(ev(4, 'provider_request', '203.0.113.3', 'key_bbbb0002'))
    b.record(ev(5, 'auth_success', '203.0.113.4', 'key_cccc0003'))
    b.record(ev(6, 'auth_failure', '203.0.113.5'))
    expect(b.topRefused()).toEqual({
      ips: [
        { ip: '203.0.113.1', count: 2 },
        { ip: '203.0.113.2', count: 1 },
      ],
      keys: [{ key_id: 'key_aaaa0001', count: 2 }],
    })
  })

  it('bounds the number of distinct values tracked', () => {
    const b = createEventBuffer({ maxTracked: 2 })
    for (let i = 0; i < 10; i++) b.record(ev(i, 'auth_failure', `198.51.100.${i}`))
    expect(b.topRefused().ips).toEqual([
      { ip: 'other', count: 8 },
      { ip: '198.51.100.0', count: 1 },
      { ip: '198.51.100.1', count: 1 },
    ])
    expect(() => b.record(null as never)).not.toThrow()
  })
})
