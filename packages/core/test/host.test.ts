import { hostGuard, hostOf, isLoopbackBind } from '@gatehouse/core'

describe('hostGuard', () => {
  const ok = hostGuard({ allowedHosts: ['Gatehouse.Internal'] })
  it.each(['127.0.0.1', '127.0.0.1:8317', '10.1.2.3', 'localhost', 'LOCALHOST:1', 'api.localhost', '[::1]', '[::1]:8317', '[fe80::1]', 'gatehouse.internal', 'gatehouse.internal:443'])('accepts %s', (h) => {
    expect(ok(h)).toBe(true)
  })
  it.each([undefined, '', ' ', 'attacker.example', 'localhost.', 'localhost:', 'localhost:x', 'localhost:80:80', '[::1', '[::1]x', '[not-ip]', 'a b', 'gatehouse.internal.evil.example', 'evil.gatehouse.internal', '127.0.0.1.nip.io', 'user@localhost'])('refuses %p', (h) => {
    expect(ok(h)).toBe(false)
  })
  it('reads the host out of a Host value, or nothing when it is malformed', () => {
    expect(hostOf('Example.COM:80')).toBe('example.com')
    expect(hostOf('[::1]:1')).toBe('::1')
    expect(hostOf('exa mple')).toBeUndefined()
  })
  it('knows a loopback bind', () => {
    expect(['127.0.0.1', '127.5.5.5', '::1', 'localhost'].map(isLoopbackBind)).toEqual([true, true, true, true])
    expect(['0.0.0.0', '::', '10.0.0.1'].map(isLoopbackBind)).toEqual([false, false, false])
  })
})
