import { createAlertEngine, parseCondition, type AlertEngineOptions } from '@gatehouse/alerts'

describe('parseCondition', () => {
  it.each([
    ['auth_failures > 100', { metric: 'auth_failures', operator: '>', threshold: 100, min: 101 }],
    ['  rate_limit_violations>=50 ', { metric: 'rate_limit_violations', operator: '>=', threshold: 50, min: 50 }],
    ['security_events > 0', { metric: 'security_events', operator: '>', threshold: 0, min: 1 }],
    ['credential_rejections >= 1', { metric: 'credential_rejections', operator: '>=', threshold: 1, min: 1 }],
    ['credentials_disabled >= 1', { metric: 'credentials_disabled', operator: '>=', threshold: 1, min: 1 }],
  ])('parses %j', (text, parsed) => {
    expect(parseCondition(text)).toEqual(parsed)
  })
})

describe('alert rules: validation', () => {
  it.each<[Partial<AlertEngineOptions>, RegExp]>([
    [
      { rules: [{ name: 'Typo', condition: 'auth_failure > 100', duration: '5m', action: 'notify_admin' }] },
      /^@gatehouse\/alerts: alerts\[0\] \("Typo"\): condition "auth_failure > 100" names an unknown metric "auth_failure" \(did you mean "auth_failures"\?\)/,
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
  ])('refuses a bad rule with GH_ALERTS_INVALID_RULE naming it: %#', (options, message) => {
    const withHook = { notify: { webhookUrl: 'https://hooks.example.com/services/x' }, ...options }
    expect(() => createAlertEngine(withHook as AlertEngineOptions)).toThrow(
      expect.objectContaining({ name: 'GatehouseConfigError', code: 'GH_ALERTS_INVALID_RULE', message: expect.stringMatching(message) }),
    )
  })

  it('refuses an unknown action, a missing field and an unknown key through the schema', () => {
    const rule = { name: 'X', condition: 'auth_failures > 1', duration: '1m' }
    expect(() => createAlertEngine({ rules: [{ ...rule, action: 'page_someone' }] } as never)).toThrow(
      expect.objectContaining({ code: 'GH_ALERTS_INVALID_OPTIONS', message: expect.stringContaining('rules[0].action: must be one of "notify_admin", "block_ip"') }),
    )
    expect(() => createAlertEngine({ rules: [{ name: 'X', duration: '1m', action: 'block_ip' }] } as never)).toThrow(
      expect.objectContaining({ message: expect.stringContaining('rules[0].condition: is required') }),
    )
    expect(() => createAlertEngine({ ruls: [] } as never)).toThrow(expect.objectContaining({ code: 'GH_ALERTS_UNKNOWN_OPTION' }))
  })

  it('refuses a neverBlock entry that is not an address or CIDR, and block_ip on credential_rejections', () => {
    expect(() => createAlertEngine({ onBlockIp: () => undefined, neverBlock: ['10.0.0.0/33'] })).toThrow(
      expect.objectContaining({ code: 'GH_ALERTS_INVALID_OPTIONS', message: expect.stringContaining('neverBlock[0] must be an IP address or CIDR (got "10.0.0.0/33")') }),
    )
    expect(() =>
      createAlertEngine({ onBlockIp: () => undefined, rules: [{ name: 'C', condition: 'credential_rejections >= 1', duration: '1m', action: 'block_ip' }] }),
    ).toThrow(expect.objectContaining({ code: 'GH_ALERTS_INVALID_RULE', message: expect.stringContaining('cannot count credential_rejections') }))
    expect(() =>
      createAlertEngine({ onBlockIp: () => undefined, rules: [{ name: 'D', condition: 'credentials_disabled >= 1', duration: '1m', action: 'block_ip' }] }),
    ).toThrow(expect.objectContaining({ code: 'GH_ALERTS_INVALID_RULE', message: expect.stringContaining('cannot count credentials_disabled') }))
  })
})
