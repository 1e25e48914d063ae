import { isRateLimitViolation, isSharedLimitRefusal, type SecurityEvent } from '@gatehouse/core'

const violation = (result: string | undefined, details?: Record<string, unknown>): SecurityEvent => ({
  timestamp: '2026-02-19T23:00:00.000Z',
  event_type: 'security_violation',
  ip: '203.0.113.7',
  ...(result === undefined ? {} : { result }),
  ...(details === undefined ? {} : { details }),
})

describe('isRateLimitViolation', () => {
  it.each<[SecurityEvent, boolean]>([
    [violation('rate_limited'), true],
    [violation('rate_limit_exceeded'), true],
    [violation('quota_exceeded'), true],
    [violation('honeytoken'), false],
    [violation(undefined), false],
    [{ ...violation('rate_limited'), event_type: 'auth_failure' }, false],
  ])('%j is %s', (event, expected) => {
    expect(isRateLimitViolation(event)).toBe(expected)
  })
})

describe('isSharedLimitRefusal', () => {
  it('is true only for an event its limiter marked own_limit: false', () => {
    expect(isSharedLimitRefusal(violation('rate_limited', { own_limit: false }))).toBe(true)
    expect(isSharedLimitRefusal(violation('rate_limited', { own_limit: true }))).toBe(false)
    expect(isSharedLimitRefusal(violation('rate_limited'))).toBe(false)
  })
})
