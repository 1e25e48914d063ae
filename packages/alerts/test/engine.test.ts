import { createAlertEngine, type BlockRequest } from '@gatehouse/alerts'
import { fakeClock, rateLimitedEvent, recordingLogger, securityEvent, type FakeClock } from '@gatehouse/testing'
import { blockEngine } from './helpers'

let clock: FakeClock | undefined
afterEach(() => clock?.restore())

describe('block_ip windows (memory store, fake clock)', () => {
  it('fires block_ip once when one address passes the threshold, with address, TTL and reason', async () => {
    clock = fakeClock()
    const { engine, blocks } = blockEngine('rate_limit_violations > 3', '1m', '2h')
    for (let i = 0; i < 3; i++) engine.recordEvent(rateLimitedEvent('203.0.113.7'))
    await engine.idle()
    expect(blocks).toEqual([])
    for (let i = 0; i < 50; i++) engine.recordEvent(rateLimitedEvent('::ffff:203.0.113.7'))
    await engine.idle()
    expect(blocks).toEqual([
      {
        ip: '203.0.113.7',
        ttlSeconds: 7200,
        rule: 'Rate limit violations',
        reason: 'alert "Rate limit violations": rate_limit_violations reached 4 in 1m (condition: rate_limit_violations > 3)',
      },
    ])
    expect(engine.stats()).toMatchObject({ fired: 1, blocked: 1 })
    await engine.shutdown()
  })

  it('keeps one window per address: others below the threshold are not blocked', async () => {
    clock = fakeClock()
    const { engine, blocks } = blockEngine('rate_limit_violations > 2')
    for (const ip of ['10.0.0.1', '10.0.0.2', '10.0.0.1', '10.0.0.2', '10.0.0.1', '10.0.0.3']) engine.recordEvent(rateLimitedEvent(ip))
    engine.recordEvent(rateLimitedEvent('not-an-address'))
    engine.recordEvent(securityEvent({ event_type: 'auth_failure', ip: '10.0.0.2' }))
    await engine.idle()
    expect(blocks.map((b) => b.ip)).toEqual(['10.0.0.1'])
    await engine.shutdown()
  })

  it('slides the window: old events fall out, and the rule fires again only after its window', async () => {
    clock = fakeClock()
    const { engine, blocks } = blockEngine('rate_limit_violations > 3')
    const hit = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) engine.recordEvent(rateLimitedEvent('198.51.100.9'))
      await engine.idle()
    }
    await hit(2) // t=0: 2
    await clock.advance(50_000)
    await hit(2) // t=50s: 4 in window -> fires
    expect(blocks).toHaveLength(1)
    await clock.advance(20_000)
    await hit(1) // t=70s: window (10s,70s] holds 3 -> no
    await clock.advance(5_000)
    await hit(5) // t=75s: 8 in window, but fired 25s ago -> quiet
    expect(blocks).toHaveLength(1)
    await clock.advance(40_000)
    await hit(4) // t=115s: fired 65s ago, 4+ in window -> fires again
    expect(blocks).toHaveLength(2)
    await engine.shutdown()
  })
})

describe('notify_admin windows (fake clock)', () => {
  it('counts notify_admin rules globally and ignores events after shutdown', async () => {
    clock = fakeClock()
    const logger = recordingLogger()
    const engine = createAlertEngine({
      logger,
      notify: { webhookUrl: 'http://127.0.0.1:9/unreachable', retries: 0, timeout: '1s' },
      rules: [{ name: 'High auth failure rate', condition: 'auth_failures > 2', duration: '5m', action: 'notify_admin' }],
    })
    for (const ip of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) engine.recordEvent(securityEvent({ ip }))
    engine.recordEvent(securityEvent({ event_type: 'auth_success' }))
    await engine.idle()
    expect(engine.stats().fired).toBe(1)
    expect(logger.calls.some((c) => c.level === 'warn' && /alert "High auth failure rate" fired: auth_failures reached 3 in 5m/.test(c.message))).toBe(true)
    await engine.shutdown()
    engine.recordEvent(securityEvent())
    await engine.idle()
    expect(engine.stats().fired).toBe(1)
  })
})

describe('what block_ip counts, and whom it spares', () => {
  it('never counts a refusal by a shared bucket towards block_ip: a victim draining nothing of its own is not blocked', async () => {
    clock = fakeClock()
    const { engine, blocks } = blockEngine('rate_limit_violations > 2')
    // The victim's 429s come from a provider bucket or quota somebody else drained.
    for (let i = 0; i < 20; i++) engine.recordEvent(rateLimitedEvent('198.51.100.20', false))
    for (let i = 0; i < 20; i++) {
      engine.recordEvent(securityEvent({ event_type: 'security_violation', result: 'quota_exceeded', ip: '198.51.100.21', details: { own_limit: false } }))
      // A limiter that does not say whose limit it was is not the caller's either.
      engine.recordEvent(securityEvent({ event_type: 'security_violation', result: 'rate_limited', ip: '198.51.100.22' }))
    }
    // The drainer's own per-key refusals do count.
    for (let i = 0; i < 3; i++) engine.recordEvent(rateLimitedEvent('203.0.113.66', true))
    await engine.idle()
    expect(blocks.map((b) => b.ip)).toEqual(['203.0.113.66'])
    await engine.shutdown()
  })

  it('counts only the caller\'s own events for a security_events block_ip rule (access lines and credential verdicts are not)', async () => {
    clock = fakeClock()
    const { engine, blocks } = blockEngine('security_events > 2')
    for (let i = 0; i < 10; i++) {
      engine.recordEvent(securityEvent({ event_type: 'provider_request', result: 'success', ip: '198.51.100.30' }))
      engine.recordEvent(securityEvent({ event_type: 'credential_access', result: 'rejected', ip: '198.51.100.31' }))
      engine.recordEvent(rateLimitedEvent('198.51.100.32', false))
    }
    for (let i = 0; i < 3; i++) engine.recordEvent(securityEvent({ event_type: 'security_violation', result: 'endpoint_denied', ip: '203.0.113.77' }))
    await engine.idle()
    expect(blocks.map((b) => b.ip)).toEqual(['203.0.113.77'])
    await engine.shutdown()
  })

  it('never blocks loopback or a neverBlock address or range: it logs the alert instead', async () => {
    clock = fakeClock()
    const logger = recordingLogger()
    const blocks: BlockRequest[] = []
    const engine = createAlertEngine({
      logger,
      onBlockIp: (b) => void blocks.push(b),
      neverBlock: ['10.20.0.0/16', '2001:db8::1', '::ffff:192.0.2.0/120'],
      rules: [{ name: 'Auth', condition: 'auth_failures >= 2', duration: '1m', action: 'block_ip' }],
    })
    for (const ip of ['127.0.0.1', '::1', '::ffff:127.0.0.5', '10.20.3.4', '2001:db8::1', '192.0.2.9', '10.21.0.1']) {
      engine.recordEvent(securityEvent({ ip }))
      engine.recordEvent(securityEvent({ ip }))
    }
    await engine.idle()
    expect(blocks.map((b) => b.ip)).toEqual(['10.21.0.1'])
    expect(engine.stats()).toMatchObject({ fired: 7, blocked: 1, spared: 6 })
    expect(logger.calls.filter((c) => c.level === 'warn' && /which is never blocked/.test(c.message)).map((c) => c.meta?.ip)).toEqual([
      '127.0.0.1',
      '::1',
      '127.0.0.5',
      '10.20.3.4',
      '2001:db8::1',
      '192.0.2.9',
    ])
    await engine.shutdown()
  })
})

describe('alert engine failures', () => {
  it('logs an onBlockIp failure and carries on', async () => {
    const logger = recordingLogger()
    const engine = createAlertEngine({
      logger,
      onBlockIp: () => Promise.reject(new Error('denylist unavailable')),
      rules: [{ name: 'R', condition: 'rate_limit_violations >= 1', duration: '1m', action: 'block_ip' }],
    })
    engine.recordEvent(rateLimitedEvent('10.1.1.1'))
    await engine.idle()
    expect(logger.calls.find((c) => c.level === 'error')).toMatchObject({ meta: { ip: '10.1.1.1', error: 'denylist unavailable' } })
    expect(engine.stats()).toMatchObject({ fired: 1, blocked: 0 })
    await engine.shutdown()
  })

  it('reports a failing store, without throwing from recordEvent', async () => {
    const logger = recordingLogger()
    const engine = createAlertEngine({
      logger,
      onBlockIp: () => undefined,
      store: { hit: () => Promise.reject(new Error('store down')), shutdown: () => Promise.resolve() },
      rules: [{ name: 'R', condition: 'rate_limit_violations > 1', duration: '1m', action: 'block_ip' }],
    })
    expect(() => engine.recordEvent(rateLimitedEvent('10.1.1.1'))).not.toThrow()
    engine.recordEvent(rateLimitedEvent('10.1.1.1'))
    await engine.idle()
    expect(engine.stats().storeErrors).toBe(2)
    expect(logger.calls.filter((c) => c.level === 'error')).toHaveLength(1)
    await engine.shutdown()
  })
})
