import { join } from 'node:path'
import type { SecurityEvent } from '@gatehouse/core'
import { createAuditLogger, verifyAuditLog } from '@gatehouse/audit-log'
import { createRefusalAggregator } from '../src/aggregate'
import { newKey, parsedLines, sampleEvent } from './helpers'
import { tempDir } from '@gatehouse/testing'

const refusal = (ip: string, extra: Partial<SecurityEvent> = {}): SecurityEvent => {
  const { user_id: _user, ...rest } = sampleEvent({ ip, result: 'missing_key', ...extra })
  return extra.user_id !== undefined ? { ...rest, user_id: extra.user_id } : rest
}
const access = (ip: string, status: number): SecurityEvent => ({
  timestamp: new Date().toISOString(),
  event_type: 'provider_request',
  ip,
  result: status >= 400 ? 'client_error' : 'success',
  details: { method: 'POST', path: '/v1/messages', status },
})

describe('createRefusalAggregator', () => {
  it('writes the first refusal of a window, counts the repeats, and writes one summary when the window ends', () => {
    let t = 1_000_000
    const agg = createRefusalAggregator(10_000, 100, () => t)
    expect(agg.take(refusal('203.0.113.9'))).toHaveLength(1)
    for (let i = 0; i < 5; i++) expect(agg.take(refusal('203.0.113.9'))).toEqual([])
    expect(agg.take(refusal('203.0.113.10'))).toHaveLength(1) // another address is another kind
    expect(agg.take(refusal('203.0.113.9', { result: 'invalid_token' }))).toHaveLength(1) // so is another result
    t += 5_000
    expect(agg.drain(false)).toEqual([])
    t += 5_000
    const [summary, ...rest] = agg.drain(false)
    expect(rest).toEqual([])
    expect(summary).toEqual({
      timestamp: expect.any(String),
      event_type: 'auth_failure',
      provider: 'claude',
      ip: '203.0.113.9',
      result: 'missing_key',
      details: { aggregated: true, count: 5, first_at: new Date(1_000_000).toISOString(), last_at: expect.any(String), interval_ms: 10_000 },
    })
    expect(agg.folded).toBe(5)
    // A refusal after the window: a new window, written in full again.
    expect(agg.take(refusal('203.0.113.9'))).toHaveLength(1)
  })

  it('closes an expired window on the next refusal of its kind, before the timer does', () => {
    let t = 0
    const agg = createRefusalAggregator(1_000, 100, () => t)
    agg.take(refusal('198.51.100.1'))
    agg.take(refusal('198.51.100.1'))
    t = 1_500
    const out = agg.take(refusal('198.51.100.1'))
    expect(out.map((e) => (e.details as { aggregated?: boolean }).aggregated ?? false)).toEqual([true, false])
  })

  it('aggregates access-log lines of refused requests only, per status and client key', () => {
    const agg = createRefusalAggregator(10_000, 100, () => 0)
    for (let i = 0; i < 3; i++) expect(agg.take(access('10.0.0.1', 200))).toHaveLength(1)
    expect(agg.take(access('10.0.0.1', 401))).toHaveLength(1)
    expect(agg.take(access('10.0.0.1', 401))).toEqual([])
    expect(agg.take(access('10.0.0.1', 429))).toHaveLength(1)
    expect(agg.take({ ...access('10.0.0.1', 401), user_id: 'key_1' })).toHaveLength(1)
    expect(agg.take(sampleEvent({ event_type: 'config_change' }))).toHaveLength(1)
    expect(agg.take(sampleEvent({ event_type: 'config_change' }))).toHaveLength(1)
    expect(agg.drain(true)).toEqual([expect.objectContaining({ event_type: 'provider_request', details: expect.objectContaining({ count: 1, status: 401 }) })])
  })

  it('stays bounded: past maxKeys, addresses share one bucket per kind, summarised without an address', () => {
    const agg = createRefusalAggregator(10_000, 3, () => 0)
    for (let i = 0; i < 1000; i++) agg.take(refusal(`10.0.${i >> 8}.${i & 255}`))
    const summaries = agg.drain(true)
    expect(summaries).toEqual([expect.objectContaining({ details: expect.objectContaining({ count: 996, addresses: 'many' }) })])
    expect(summaries[0]).not.toHaveProperty('ip')
  })
})

describe('createAuditLogger with aggregateInterval', () => {
  it('folds a flood of refusals into a few chained lines that verify', async () => {
    const { dir, cleanup } = tempDir()
    try {
      const file = join(dir, 'audit.log')
      const key = newKey()
      const audit = createAuditLogger({ file, key, aggregateInterval: '1m' })
      for (let i = 0; i < 10_000; i++) audit.log(refusal('203.0.113.9'))
      audit.log(sampleEvent({ event_type: 'config_change', result: 'key_revoked' }))
      for (let i = 0; i < 3; i++) audit.log(refusal('203.0.113.10'))
      await audit.flush()
      expect(audit.stats()).toMatchObject({ aggregated: 9_999 + 2, written: 5 })
      await audit.close()
      const lines = parsedLines(file)
      expect(lines.map((l) => [l.event_type, l.ip, (l.details as { count?: number }).count])).toEqual([
        ['auth_failure', '203.0.113.9', undefined],
        ['config_change', '192.168.1.100', undefined],
        ['auth_failure', '203.0.113.10', undefined],
        ['auth_failure', '203.0.113.9', 9_999],
        ['auth_failure', '203.0.113.10', 2],
      ])
      expect(await verifyAuditLog(file, key)).toMatchObject({ ok: true, lines: 5 })
    } finally {
      cleanup()
    }
  })

  it('rejects a bad interval', () => {
    expect(() => createAuditLogger({ key: newKey(), aggregateInterval: 'often' })).toThrow(expect.objectContaining({ code: 'GH_AUDIT_INVALID_OPTIONS', message: expect.stringContaining('aggregateInterval') }))
  })
})
