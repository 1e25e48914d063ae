import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { SecurityEvent } from '@gatehouse/core'
import { MONITORING_QUERIES, createStorageSink, type MonitoringQueryName } from '@gatehouse/storage'
import { authFailure, pgUrl, providerRequest, testDb, type TestDb } from './helpers'

let db: TestDb
const now = Date.now()
const at = (msAgo: number): string => new Date(now - msAgo).toISOString()
const HOUR = 3_600_000
const DAY = 24 * HOUR
const day = (iso: string): string => iso.slice(0, 10)
const T1 = at(2 * HOUR)
const T2 = at(26 * HOUR)

const times = <T>(n: number, fn: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => fn(i))
const tokens = (input: number, output: number): Record<string, unknown> => ({ input_tokens: input, output_tokens: output })

/** The events behind every documented query, written through the sink as the gateway would. */
const EVENTS: SecurityEvent[] = [
  // Failed authentications.
  ...times(10, () => authFailure({ ip: '203.0.113.7', timestamp: T1, result: 'missing_key' })),
  ...times(2, () => authFailure({ ip: '203.0.113.7', timestamp: T1, user_id: 'key_aaaa0001', result: 'revoked_key' })),
  authFailure({ ip: '198.51.100.2', timestamp: T1, user_id: 'key_aaaa0001', result: 'expired_key' }),
  ...times(2, () => authFailure({ ip: '198.51.100.2', timestamp: T1, result: 'missing_key' })),
  ...times(11, () => authFailure({ ip: '2001:db8::1', timestamp: T2, user_id: 'key_bbbb0002', result: 'invalid_key' })),
  ...times(15, () => authFailure({ ip: '192.0.2.99', timestamp: at(10 * DAY), user_id: 'key_cccc0003' })),
  ...times(20, () => authFailure({ event_type: 'security_violation', ip: '203.0.113.8', timestamp: T1, result: 'rate_limited' })),
  // Token use: a steady key, a key that spikes today, an old heavy day, a refused request.
  ...times(6, (i) => providerRequest({ user_id: 'key_steady01', provider: 'openai', timestamp: at(i * DAY) }, tokens(600, 400))),
  ...times(5, (i) => providerRequest({ user_id: 'key_spike001', timestamp: at((i + 1) * DAY) }, tokens(600, 400))),
  providerRequest({ user_id: 'key_spike001', timestamp: at(0) }, tokens(1500, 500)),
  providerRequest({ user_id: 'key_spike001', timestamp: at(0) }, tokens(1000, 1000)),
  providerRequest({ user_id: 'key_spike001', timestamp: at(0) }, tokens(900, 100)),
  providerRequest({ user_id: 'key_old00001', timestamp: at(40 * DAY) }, tokens(90_000, 10_000)),
  providerRequest({ user_id: undefined, timestamp: T1 }, { status: 401, input_tokens: undefined, output_tokens: undefined }),
  // A suspected breach on 2026-02-19 22:00 UTC.
  ...[
    ['b-2159', '2026-02-19T21:59:59.999Z'],
    ['b-2200', '2026-02-19T22:00:00.000Z'],
    ['b-2315', '2026-02-19T23:15:00.000Z'],
    ['b-0600', '2026-02-20T06:00:00.000Z'],
  ].map(([id, ts]) =>
    providerRequest({ request_id: id!, timestamp: ts!, user_id: 'key_breach01', ip: '198.51.100.66' }, { path: '/v1/messages', input_tokens: undefined, output_tokens: undefined }),
  ),
  authFailure({ request_id: 'e-2330', timestamp: '2026-02-19T23:30:00.000Z', user_id: 'key_breach01', result: 'revoked_key', ip: '198.51.100.66' }),
  authFailure({ event_type: 'config_change', request_id: 'e-0100', timestamp: '2026-02-20T01:00:00.000Z', user_id: 'management', result: 'keys.revoke', ip: '127.0.0.1', details: { id: 'key_breach01' } }),
  authFailure({ request_id: 'e-before', timestamp: '2026-02-18T12:00:00.000Z', user_id: 'key_breach01' }),
]

beforeAll(async () => {
  db = await testDb()
  const sink = createStorageSink({ url: pgUrl(), schema: db.schema, batchSize: 200, retentionDays: 0 })
  for (const e of EVENTS) sink.record(e)
  await sink.close()
  expect(sink.stats()).toMatchObject({ written: EVENTS.length, dropped: 0 })
})
afterAll(async () => {
  await db.cleanup()
})

/** Run a documented query as written (the pool's search_path is the test schema). */
const run = async (name: MonitoringQueryName): Promise<Array<Record<string, unknown>>> =>
  (await db.admin.query(MONITORING_QUERIES[name])).rows as Array<Record<string, unknown>>

describe('the documented monitoring queries', () => {
  it.each(Object.keys(MONITORING_QUERIES) as MonitoringQueryName[])('README gives %s verbatim', (name) => {
    const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8')
    expect(readme).toContain(MONITORING_QUERIES[name])
  })

  it('failed authentications per IP and day: more than 10 in the last 7 days', async () => {
    expect(await run('failedAuthByIp')).toEqual([
      { ip_address: '203.0.113.7', day: day(T1), failures: '12' },
      { ip_address: '2001:db8::1', day: day(T2), failures: '11' },
    ])
  })

  it('failed authentications per key and day, with the addresses and reasons', async () => {
    expect(await run('failedAuthByKey')).toEqual([
      { key_id: 'key_aaaa0001', day: day(T1), failures: '3', addresses: '2', reasons: ['expired_key', 'revoked_key'] },
      { key_id: 'key_bbbb0002', day: day(T2), failures: '11', addresses: '1', reasons: ['invalid_key'] },
    ])
  })

  it('largest daily token use per key', async () => {
    const rows = await run('dailyTokensByKey')
    expect(rows.slice(0, 2)).toEqual([
      { key_id: 'key_old00001', provider: 'claude', usage_date: day(at(40 * DAY)), daily_tokens: '100000' },
      { key_id: 'key_spike001', provider: 'claude', usage_date: day(at(0)), daily_tokens: '5000' },
    ])
    expect(rows).toHaveLength(13)
    expect(rows.slice(2).every((r) => r.daily_tokens === '1000')).toBe(true)
  })

  it('token usage spikes: only the key above twice its prior 7-day average', async () => {
    expect(await run('tokenSpikesByKey')).toEqual([
      { key_id: 'key_spike001', day: day(at(0)), tokens: '5000', avg_prior_7d: '1000', ratio: '5.0' },
    ])
  })

  it('requests in the window after a suspected breach, newest first', async () => {
    const rows = await run('requestsAfterBreach')
    expect(rows.map((r) => r.request_id)).toEqual(['b-2315', 'b-2200'])
    expect(rows[0]).toEqual({
      timestamp: new Date('2026-02-19T23:15:00.000Z'),
      request_id: 'b-2315',
      key_id: 'key_breach01',
      ip_address: '198.51.100.66',
      provider: 'claude',
      method: 'POST',
      path: '/v1/messages',
      response_status: 200,
      total_tokens: null,
    })
  })

  it('security events in the same window, newest first', async () => {
    const rows = await run('eventsAfterBreach')
    expect(rows.map((r) => [r.request_id, r.event_type, r.result])).toEqual([
      ['e-0100', 'config_change', 'keys.revoke'],
      ['e-2330', 'auth_failure', 'revoked_key'],
    ])
    expect(rows[0]!.details).toEqual({ id: 'key_breach01' })
  })
})
