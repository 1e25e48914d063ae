import { MemoryAlertStore, createAlertEngine, parseCondition, type AlertEngineOptions, type BlockRequest } from '@gatehouse/metrics'
import { event, rateLimited, recordingLogger } from './helpers'

/** Only the clock is fake: timers, ticks and I/O run for real. */
function fakeClock(): void {
  jest.useFakeTimers({
    now: new Date('2026-02-19T23:00:00Z'),
    doNotFake: ['nextTick', 'setImmediate', 'clearImmediate', 'queueMicrotask', 'setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'],
  })
}

describe('alert rules: parsing and validation', () => {
  it.each([
    ['auth_failures > 100', { metric: 'auth_failures', operator: '>', threshold: 100, min: 101 }],
    ['  rate_limit_violations>=50 ', { metric: 'rate_limit_violations', operator: '>=', threshold: 50, min: 50 }],
    ['security_events > 0', { metric: 'security_events', operator: '>', threshold: 0, min: 1 }],
    ['credential_rejections >= 1', { metric: 'credential_rejections', operator: '>=', threshold: 1, min: 1 }],
    ['credentials_disabled >= 1', { metric: 'credentials_disabled', operator: '>=', threshold: 1, min: 1 }],
  ])('parses %j', (text, parsed) => {
    expect(parseCondition(text)).toEqual(parsed)
  })

  it.each<[Partial<AlertEngineOptions>, RegExp]>([
    [
      { rules: [{ name: 'Typo', condition: 'auth_failure > 100', duration: '5m', action: 'notify_admin' }] },
      /^@gatehouse\/metrics: alerts\[0\] \("Typo"\): condition "auth_failure > 100" names an unknown metric "auth_failure" \(did you mean "auth_failures"\?\)/,
    ],
    [
      { rules: [{ name: 'Words', condition: 'auth_failures greater than 5', duration: '5m', action: 'notify_admin' }] },
      /alerts\[0\] \("Words"\): condition "auth_failures greater than 5" must read "<metric> > <whole number>"/,
    ],
    [{ rules: [{ name: 'Less', condition: 'auth_failures < 5', duration: '5m', action: 'notify_admin' }] }, /alerts\[0\] \("Less"\): condition/],
    [{ rules: [{ name: 'Zero', condition: 'auth_failures >= 0', duration: '5m', action: 'notify_admin' }] }, /would fire on nothing/],
    [{ rules: [{ name: 'Dur', condition: 'auth_failures > 1', duration: 'soon', action: 'notify_admin' }] }, /alerts\[0\] \("Dur"\): duration must be a duration/],
    [{ rules: [{ name: 'Short', condition: 'auth_failures > 1', duration: '10ms', action: 'notify_admin' }] }, /between 1s and 7d/],
    [{ notify: {}, rules: [{ name: 'N', condition: 'auth_failures > 1', duration: '1m', action: 'notify_admin' }] }, /action notify_admin needs notify\.webhookUrl/],
    [{ rules: [{ name: 'B', condition: 'rate_limit_violations > 1', duration: '1m', action: 'block_ip' }] }, /action block_ip needs an onBlockIp callback/],
    [
      { onBlockIp: () => undefined, rules: [{ name: 'T', condition: 'auth_failures > 1', duration: '1m', action: 'notify_admin', ttl: '1h' }] },
      /ttl applies to block_ip only/,
    ],
    [
      {
        onBlockIp: () => undefined,
        rules: [
          { name: 'Same Name', condition: 'rate_limit_violations > 1', duration: '1m', action: 'block_ip' },
          { name: 'same-name', condition: 'rate_limit_violations > 2', duration: '1m', action: 'block_ip' },
        ],
      },
      /alerts\[1\] \("same-name"\): its name is the same as "Same Name"'s/,
    ],
  ])('refuses a bad rule with GH_METRICS_INVALID_ALERT naming it: %#', (options, message) => {
    const withHook = { notify: { webhookUrl: 'https://hooks.example.com/services/x' }, ...options }
    expect(() => createAlertEngine(withHook as AlertEngineOptions)).toThrow(
      expect.objectContaining({ name: 'GatehouseConfigError', code: 'GH_METRICS_INVALID_ALERT', message: expect.stringMatching(message) }),
    )
  })

  it('refuses an unknown action, a missing field and an unknown key through the schema', () => {
    const rule = { name: 'X', condition: 'auth_failures > 1', duration: '1m' }
    expect(() => createAlertEngine({ rules: [{ ...rule, action: 'page_someone' }] } as never)).toThrow(
      expect.objectContaining({ code: 'GH_METRICS_INVALID_OPTIONS', message: expect.stringContaining('rules[0].action: must be one of "notify_admin", "block_ip"') }),
    )
    expect(() => createAlertEngine({ rules: [{ name: 'X', duration: '1m', action: 'block_ip' }] } as never)).toThrow(
      expect.objectContaining({ message: expect.stringContaining('rules[0].condition: is required') }),
    )
    expect(() => createAlertEngine({ ruls: [] } as never)).toThrow(expect.objectContaining({ code: 'GH_METRICS_UNKNOWN_OPTION' }))
  })

  it('refuses a webhook URL that is not http(s) without quoting it', () => {
    const secret = 'hooks.example.com/services/T000/B000/abcdefghijklmnop'
    for (const webhookUrl of [`ftp://${secret}`, `not a url ${secret}`]) {
      let thrown: Error | undefined
      try {
        createAlertEngine({ notify: { webhookUrl } })
      } catch (err) {
        thrown = err as Error
      }
      expect(thrown).toMatchObject({ code: 'GH_METRICS_INVALID_OPTIONS' })
      expect(thrown!.message).not.toContain('abcdefghijklmnop')
    }
  })

  it('warns about a plain-http webhook off loopback, showing only its origin', () => {
    const logger = recordingLogger()
    createAlertEngine({ logger, notify: { webhookUrl: 'http://hooks.example.com/services/T0/B0/secretpart123' } })
    expect(logger.calls).toEqual([expect.objectContaining({ level: 'warn', meta: { webhook: 'http://hooks.example.com' } })])
    expect(logger.text()).not.toContain('secretpart123')
  })
})

describe('alert rules: windows and firing (memory store, fake clock)', () => {
  afterEach(() => jest.useRealTimers())

  const blockEngine = (condition: string, duration = '1m', ttl?: string) => {
    const blocks: BlockRequest[] = []
    const engine = createAlertEngine({
      onBlockIp: (b) => void blocks.push(b),
      rules: [{ name: 'Rate limit violations', condition, duration, action: 'block_ip', ...(ttl ? { ttl } : {}) }],
    })
    return { engine, blocks }
  }

  it('fires block_ip once when one address passes the threshold, with address, TTL and reason', async () => {
    fakeClock()
    const { engine, blocks } = blockEngine('rate_limit_violations > 3', '1m', '2h')
    for (let i = 0; i < 3; i++) engine.recordEvent(rateLimited('203.0.113.7'))
    await engine.idle()
    expect(blocks).toEqual([])
    for (let i = 0; i < 50; i++) engine.recordEvent(rateLimited('::ffff:203.0.113.7'))
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
    fakeClock()
    const { engine, blocks } = blockEngine('rate_limit_violations > 2')
    for (const ip of ['10.0.0.1', '10.0.0.2', '10.0.0.1', '10.0.0.2', '10.0.0.1', '10.0.0.3']) engine.recordEvent(rateLimited(ip))
    engine.recordEvent(rateLimited('not-an-address'))
    engine.recordEvent(event({ event_type: 'auth_failure', ip: '10.0.0.2' }))
    await engine.idle()
    expect(blocks.map((b) => b.ip)).toEqual(['10.0.0.1'])
    await engine.shutdown()
  })

  it('slides the window: old events fall out, and the rule fires again only after its window', async () => {
    fakeClock()
    const { engine, blocks } = blockEngine('rate_limit_violations > 3')
    const hit = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) engine.recordEvent(rateLimited('198.51.100.9'))
      await engine.idle()
    }
    await hit(2) // t=0: 2
    jest.advanceTimersByTime(50_000)
    await hit(2) // t=50s: 4 in window -> fires
    expect(blocks).toHaveLength(1)
    jest.advanceTimersByTime(20_000)
    await hit(1) // t=70s: window (10s,70s] holds 3 -> no
    jest.advanceTimersByTime(5_000)
    await hit(5) // t=75s: 8 in window, but fired 25s ago -> quiet
    expect(blocks).toHaveLength(1)
    jest.advanceTimersByTime(40_000)
    await hit(4) // t=115s: fired 65s ago, 4+ in window -> fires again
    expect(blocks).toHaveLength(2)
    await engine.shutdown()
  })

  it('counts notify_admin rules globally and ignores events after shutdown', async () => {
    fakeClock()
    const logger = recordingLogger()
    const engine = createAlertEngine({
      logger,
      notify: { webhookUrl: 'http://127.0.0.1:9/unreachable', retries: 0, timeout: '1s' },
      rules: [{ name: 'High auth failure rate', condition: 'auth_failures > 2', duration: '5m', action: 'notify_admin' }],
    })
    for (const ip of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) engine.recordEvent(event({ ip }))
    engine.recordEvent(event({ event_type: 'auth_success' }))
    await engine.idle()
    expect(engine.stats().fired).toBe(1)
    expect(logger.calls.some((c) => c.level === 'warn' && /alert "High auth failure rate" fired: auth_failures reached 3 in 5m/.test(c.message))).toBe(true)
    await engine.shutdown()
    engine.recordEvent(event())
    await engine.idle()
    expect(engine.stats().fired).toBe(1)
  })

  it('never counts a refusal by a shared bucket towards block_ip: a victim draining nothing of its own is not blocked', async () => {
    fakeClock()
    const { engine, blocks } = blockEngine('rate_limit_violations > 2')
    // The victim's 429s come from a provider bucket or quota somebody else drained.
    for (let i = 0; i < 20; i++) engine.recordEvent(rateLimited('198.51.100.20', false))
    for (let i = 0; i < 20; i++) {
      engine.recordEvent(event({ event_type: 'security_violation', result: 'quota_exceeded', ip: '198.51.100.21', details: { own_limit: false } }))
      // A limiter that does not say whose limit it was is not the caller's either.
      engine.recordEvent(event({ event_type: 'security_violation', result: 'rate_limited', ip: '198.51.100.22' }))
    }
    // The drainer's own per-key refusals do count.
    for (let i = 0; i < 3; i++) engine.recordEvent(rateLimited('203.0.113.66', true))
    await engine.idle()
    expect(blocks.map((b) => b.ip)).toEqual(['203.0.113.66'])
    await engine.shutdown()
  })

  it('counts only the caller\'s own events for a security_events block_ip rule (access lines and credential verdicts are not)', async () => {
    fakeClock()
    const { engine, blocks } = blockEngine('security_events > 2')
    for (let i = 0; i < 10; i++) {
      engine.recordEvent(event({ event_type: 'provider_request', result: 'success', ip: '198.51.100.30' }))
      engine.recordEvent(event({ event_type: 'credential_access', result: 'rejected', ip: '198.51.100.31' }))
      engine.recordEvent(rateLimited('198.51.100.32', false))
    }
    for (let i = 0; i < 3; i++) engine.recordEvent(event({ event_type: 'security_violation', result: 'endpoint_denied', ip: '203.0.113.77' }))
    await engine.idle()
    expect(blocks.map((b) => b.ip)).toEqual(['203.0.113.77'])
    await engine.shutdown()
  })

  it('never blocks loopback or a neverBlock address or range: it logs the alert instead', async () => {
    fakeClock()
    const logger = recordingLogger()
    const blocks: BlockRequest[] = []
    const engine = createAlertEngine({
      logger,
      onBlockIp: (b) => void blocks.push(b),
      neverBlock: ['10.20.0.0/16', '2001:db8::1', '::ffff:192.0.2.0/120'],
      rules: [{ name: 'Auth', condition: 'auth_failures >= 2', duration: '1m', action: 'block_ip' }],
    })
    for (const ip of ['127.0.0.1', '::1', '::ffff:127.0.0.5', '10.20.3.4', '2001:db8::1', '192.0.2.9', '10.21.0.1']) {
      engine.recordEvent(event({ ip }))
      engine.recordEvent(event({ ip }))
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

  it('refuses a neverBlock entry that is not an address or CIDR, and block_ip on credential_rejections', () => {
    expect(() => createAlertEngine({ onBlockIp: () => undefined, neverBlock: ['10.0.0.0/33'] })).toThrow(
      expect.objectContaining({ code: 'GH_METRICS_INVALID_OPTIONS', message: expect.stringContaining('neverBlock[0] must be an IP address or CIDR (got "10.0.0.0/33")') }),
    )
    expect(() =>
      createAlertEngine({ onBlockIp: () => undefined, rules: [{ name: 'C', condition: 'credential_rejections >= 1', duration: '1m', action: 'block_ip' }] }),
    ).toThrow(expect.objectContaining({ code: 'GH_METRICS_INVALID_ALERT', message: expect.stringContaining('cannot count credential_rejections') }))
    expect(() =>
      createAlertEngine({ onBlockIp: () => undefined, rules: [{ name: 'D', condition: 'credentials_disabled >= 1', duration: '1m', action: 'block_ip' }] }),
    ).toThrow(expect.objectContaining({ code: 'GH_METRICS_INVALID_ALERT', message: expect.stringContaining('cannot count credentials_disabled') }))
  })

  it('logs an onBlockIp failure and carries on', async () => {
    const logger = recordingLogger()
    const engine = createAlertEngine({
      logger,
      onBlockIp: () => Promise.reject(new Error('denylist unavailable')),
      rules: [{ name: 'R', condition: 'rate_limit_violations >= 1', duration: '1m', action: 'block_ip' }],
    })
    engine.recordEvent(rateLimited('10.1.1.1'))
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
    expect(() => engine.recordEvent(rateLimited('10.1.1.1'))).not.toThrow()
    engine.recordEvent(rateLimited('10.1.1.1'))
    await engine.idle()
    expect(engine.stats().storeErrors).toBe(2)
    expect(logger.calls.filter((c) => c.level === 'error')).toHaveLength(1)
    await engine.shutdown()
  })
})

describe('MemoryAlertStore', () => {
  it('keeps at most maxSubjects windows, dropping the least recently hit', async () => {
    const store = new MemoryAlertStore({ maxSubjects: 3 })
    for (const ip of ['a', 'b', 'c']) store.hit('r', ip, 1000, 60_000, 3)
    store.hit('r', 'a', 1001, 60_000, 3) // a is now the most recent
    store.hit('r', 'd', 1002, 60_000, 3) // evicts b, the least recently hit
    expect(store.size).toBe(3)
    expect(store.hit('r', 'b', 1003, 60_000, 3)).toEqual({ count: 1, fire: false }) // b starts over (evicts c)
    expect(store.hit('r', 'a', 1004, 60_000, 3)).toEqual({ count: 3, fire: true }) // a kept its two
    await store.shutdown()
    expect(store.size).toBe(0)
  })

  it('caps the timestamps kept per window at the firing count', () => {
    const store = new MemoryAlertStore()
    let last = { count: 0, fire: false }
    for (let i = 0; i < 1000; i++) last = store.hit('r', 's', 1000 + i, 60_000, 5)
    expect(last).toEqual({ count: 5, fire: false })
    return store.shutdown()
  })
})
