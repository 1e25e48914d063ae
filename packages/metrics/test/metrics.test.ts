import type { RequestHandler } from 'express'
import { register as globalRegistry } from 'prom-client'
import request from 'supertest'
import { createTestApp, rateLimitedEvent, securityEvent } from '@gatehouse/testing'
import { createMetrics, isRateLimitViolation, type MetricsOptions } from '@gatehouse/metrics'
import { sample } from './helpers'

describe('createMetrics: names and registry', () => {
  it('names the metrics with the default prefix, in its own registry', async () => {
    const metrics = createMetrics({ processMetrics: false })
    expect(metrics.names).toEqual({
      authFailures: 'gatehouse_auth_failures_total',
      rateLimitViolations: 'gatehouse_rate_limit_violations_total',
      securityEvents: 'gatehouse_security_events_total',
      requests: 'gatehouse_requests_total',
      requestDuration: 'gatehouse_request_duration_seconds',
      upstreamTokens: 'gatehouse_upstream_tokens_total',
      postureFindings: 'gatehouse_security_posture_findings',
      credentialRejections: 'gatehouse_upstream_credential_rejections_total',
      unauditedChanges: 'gatehouse_unaudited_changes_total',
      outboundSecrets: 'gatehouse_outbound_secrets_total',
    })
    metrics.recordEvent(securityEvent())
    expect(await globalRegistry.metrics()).not.toContain('auth_failures')
    expect(metrics.registry).not.toBe(globalRegistry)
  })

  it("reproduces the seed's names and lines with prefix cliproxy_", async () => {
    const metrics = createMetrics({ prefix: 'cliproxy_', processMetrics: false })
    for (let i = 0; i < 5; i++) metrics.recordEvent(securityEvent({ provider: 'claude' }))
    for (let i = 0; i < 10; i++) metrics.recordEvent(rateLimitedEvent('192.168.1.100'))
    const text = await metrics.render()
    expect(text).toContain('# HELP cliproxy_auth_failures_total Total authentication failures\n# TYPE cliproxy_auth_failures_total counter\ncliproxy_auth_failures_total{provider="claude"} 5')
    expect(text).toContain('# HELP cliproxy_rate_limit_violations_total Total rate limit violations')
    expect(text).toContain('cliproxy_rate_limit_violations_total{ip="192.168.1.100"} 10')
    expect(text).toContain('# HELP cliproxy_security_events_total Total security events')
    expect(sample(text, 'cliproxy_security_events_total{event_type="auth_failure"}')).toBe(5)
    expect(sample(text, 'cliproxy_security_events_total{event_type="security_violation"}')).toBe(10)
  })

  it('exports the process metrics unless turned off, and two instances do not clash', async () => {
    const a = createMetrics()
    const b = createMetrics({ processMetrics: false })
    expect(await a.render()).toMatch(/^process_cpu_user_seconds_total /m)
    expect(await b.render()).not.toContain('process_cpu_user_seconds_total')
    a.recordEvent(securityEvent())
    expect(sample(await b.render(), 'gatehouse_auth_failures_total{provider="claude"}')).toBeUndefined()
  })
})

describe('createMetrics: security events', () => {
  it('counts a refusal by a shared bucket under ip="shared", never under the refused caller\'s address', async () => {
    const metrics = createMetrics({ processMetrics: false })
    metrics.recordEvent(securityEvent({ event_type: 'security_violation', result: 'rate_limited', ip: '198.51.100.7', details: { own_limit: false } }))
    metrics.recordEvent(securityEvent({ event_type: 'security_violation', result: 'quota_exceeded', ip: '198.51.100.7', details: { own_limit: false } }))
    metrics.recordEvent(securityEvent({ event_type: 'security_violation', result: 'rate_limited', ip: '203.0.113.66', details: { own_limit: true } }))
    const text = await metrics.render()
    expect(sample(text, 'gatehouse_rate_limit_violations_total{ip="shared"}')).toBe(2)
    expect(sample(text, 'gatehouse_rate_limit_violations_total{ip="203.0.113.66"}')).toBe(1)
    expect(text).not.toContain('198.51.100.7')
  })

  it('counts credentials found in request bodies by provider, rule and action, from bounded sets only', async () => {
    const metrics = createMetrics({ processMetrics: false })
    const found = (result: string, secrets: unknown) => securityEvent({ event_type: 'security_violation', result, provider: 'openai', details: { code: 'GH_RG_SECRET_DETECTED', count: 2, secrets } })
    metrics.recordEvent(found('secret_detected', [{ rule: 'private-key', json_path: '$.messages[0].content', action: 'block' }, { rule: 'github-token', json_path: '$.x', action: 'log' }]))
    metrics.recordEvent(found('secret_masked', [{ rule: 'github-token', json_path: '$.y', action: 'mask' }]))
    // A rule or action outside the shared table is counted as other: a client cannot mint label values.
    metrics.recordEvent(found('secret_forwarded', [{ rule: 'made-up-rule-1', action: 'log' }, { rule: 'github-token', action: 'shout' }]))
    metrics.recordEvent(found('secret_forwarded', 'not a list'))
    metrics.recordEvent(securityEvent({ event_type: 'security_violation', result: 'rate_limited', provider: 'openai', details: { secrets: [{ rule: 'github-token', action: 'log' }] } }))
    const text = await metrics.render()
    const at = (rule: string, action: string) => sample(text, `gatehouse_outbound_secrets_total{provider="openai",rule="${rule}",action="${action}"}`)
    expect(at('private-key', 'block')).toBe(1)
    expect(at('github-token', 'log')).toBe(1)
    expect(at('github-token', 'mask')).toBe(1)
    expect(at('other', 'log')).toBe(1)
    expect(at('github-token', 'other')).toBe(1)
    expect(text).not.toContain('made-up-rule-1')
    expect(text).not.toContain('json_path')
  })

  it('counts credentials the provider proved bad, by what the vault did', async () => {
    const metrics = createMetrics({ processMetrics: false })
    const rejected = (action: unknown) => securityEvent({ event_type: 'credential_access', result: 'rejected', provider: 'openai', details: { action, credential_id: 'cred_1' } })
    metrics.recordEvent(rejected('kept_last_credential'))
    metrics.recordEvent(rejected('kept_last_credential'))
    metrics.recordEvent(rejected('cooldown'))
    metrics.recordEvent(rejected('something new'))
    metrics.recordEvent(securityEvent({ event_type: 'credential_access', result: 'granted', provider: 'openai' }))
    const text = await metrics.render()
    expect(sample(text, 'gatehouse_upstream_credential_rejections_total{provider="openai",action="kept_last_credential"}')).toBe(2)
    expect(sample(text, 'gatehouse_upstream_credential_rejections_total{provider="openai",action="cooldown"}')).toBe(1)
    expect(sample(text, 'gatehouse_upstream_credential_rejections_total{provider="openai",action="other"}')).toBe(1)
    expect(text).not.toContain('cred_1')
  })

  it('counts auth failures by provider, unknown providers under other and absent ones as unknown', async () => {
    const metrics = createMetrics({ processMetrics: false, providers: ['mistral'] })
    metrics.recordEvent(securityEvent({ provider: 'openai' }))
    metrics.recordEvent(securityEvent({ provider: 'mistral' }))
    metrics.recordEvent(securityEvent({ provider: 'gpt-4o-2024-08-06 from /v1/chat' }))
    const { provider: _p, ...noProvider } = securityEvent()
    metrics.recordEvent(noProvider)
    metrics.recordEvent(securityEvent({ event_type: 'auth_success' }))
    const text = await metrics.render()
    expect(sample(text, 'gatehouse_auth_failures_total{provider="openai"}')).toBe(1)
    expect(sample(text, 'gatehouse_auth_failures_total{provider="mistral"}')).toBe(1)
    expect(sample(text, 'gatehouse_auth_failures_total{provider="other"}')).toBe(1)
    expect(sample(text, 'gatehouse_auth_failures_total{provider="unknown"}')).toBe(1)
    expect(text).not.toContain('gpt-4o')
  })

  it('counts rate-limit violations by the configured test', async () => {
    expect(isRateLimitViolation(rateLimitedEvent('1.2.3.4'))).toBe(true)
    expect(isRateLimitViolation(securityEvent({ event_type: 'security_violation', result: 'quota_exceeded' }))).toBe(true)
    expect(isRateLimitViolation(securityEvent({ event_type: 'security_violation', result: 'honeytoken' }))).toBe(false)
    const metrics = createMetrics({ processMetrics: false, isRateLimitViolation: (e) => e.result === 'slow_down' })
    metrics.recordEvent(securityEvent({ event_type: 'security_violation', result: 'slow_down', ip: '1.2.3.4' }))
    metrics.recordEvent(rateLimitedEvent('1.2.3.4'))
    expect(sample(await metrics.render(), 'gatehouse_rate_limit_violations_total{ip="1.2.3.4"}')).toBe(1)
  })
})

describe('createMetrics: bounded labels', () => {
  it('bounds the ip label: past maxLabelValues addresses count under other; non-addresses are other', async () => {
    const metrics = createMetrics({ processMetrics: false, maxLabelValues: 3 })
    for (const ip of ['10.0.0.1', '10.0.0.2', '::ffff:10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.1', 'not-an-ip']) {
      metrics.recordEvent(rateLimitedEvent(ip))
    }
    const text = await metrics.render()
    const series = text.split('\n').filter((l) => l.startsWith('gatehouse_rate_limit_violations_total{'))
    expect(series.sort()).toEqual(
      [
        'gatehouse_rate_limit_violations_total{ip="10.0.0.1"} 2',
        'gatehouse_rate_limit_violations_total{ip="10.0.0.2"} 1',
        'gatehouse_rate_limit_violations_total{ip="10.0.0.3"} 1',
        'gatehouse_rate_limit_violations_total{ip="other"} 3',
      ].sort(),
    )
  })

  it('keeps at most maxLabelValues + 1 ip series under a flood of addresses', async () => {
    const metrics = createMetrics({ processMetrics: false, maxLabelValues: 50 })
    for (let i = 0; i < 5000; i++) metrics.recordEvent(rateLimitedEvent(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`))
    const series = (await metrics.render()).split('\n').filter((l) => l.startsWith('gatehouse_rate_limit_violations_total{'))
    expect(series).toHaveLength(51)
    expect(sample(await metrics.render(), 'gatehouse_rate_limit_violations_total{ip="other"}')).toBe(4950)
  })

  it('labels come only from bounded sets: no path, model or free-text label exists', () => {
    const metrics = createMetrics({ processMetrics: false })
    const labelNames = metrics.registry
      .getMetricsAsArray()
      .flatMap((m) => (m as unknown as { labelNames: string[] }).labelNames)
    expect([...new Set(labelNames)].sort()).toEqual(['action', 'direction', 'event_type', 'ip', 'provider', 'rule', 'severity', 'status'])
  })
})

describe('createMetrics: requests', () => {
  it('turns provider_request events into request, duration and token metrics', async () => {
    const metrics = createMetrics({ processMetrics: false })
    metrics.recordEvent(
      securityEvent({
        event_type: 'provider_request',
        provider: 'claude',
        result: 'success',
        details: { method: 'POST', path: '/v1/messages', status: 200, duration_ms: 1234.5, input_tokens: 12, output_tokens: 34 },
      }),
    )
    metrics.recordEvent(securityEvent({ event_type: 'provider_request', provider: 'openai', details: { status: 429, duration_ms: 3 } }))
    const text = await metrics.render()
    expect(sample(text, 'gatehouse_requests_total{provider="claude",status="200"}')).toBe(1)
    expect(sample(text, 'gatehouse_requests_total{provider="openai",status="429"}')).toBe(1)
    expect(sample(text, 'gatehouse_request_duration_seconds_sum{provider="claude"}')).toBeCloseTo(1.2345)
    expect(sample(text, 'gatehouse_request_duration_seconds_bucket{le="2.5",provider="claude"}')).toBe(1)
    expect(sample(text, 'gatehouse_request_duration_seconds_bucket{le="1",provider="claude"}')).toBe(0)
    expect(sample(text, 'gatehouse_upstream_tokens_total{provider="claude",direction="input"}')).toBe(12)
    expect(sample(text, 'gatehouse_upstream_tokens_total{provider="claude",direction="output"}')).toBe(34)
    expect(sample(text, 'gatehouse_security_events_total{event_type="provider_request"}')).toBe(2)
    expect(text).not.toContain('/v1/messages')
  })

  it('observeRequest records a request; bad status and event types fall under other; nothing throws', async () => {
    const metrics = createMetrics({ processMetrics: false })
    metrics.observeRequest({ provider: 'gemini', status: 503, durationSeconds: 0.2, usage: { inputTokens: 5 } })
    metrics.observeRequest({ provider: 'gemini', status: 999, durationSeconds: Number.NaN })
    metrics.recordEvent({ event_type: 'invented' } as never)
    expect(() => metrics.recordEvent(null as never)).not.toThrow()
    expect(() => metrics.observeRequest(undefined as never)).not.toThrow()
    const text = await metrics.render()
    expect(sample(text, 'gatehouse_requests_total{provider="gemini",status="503"}')).toBe(1)
    expect(sample(text, 'gatehouse_requests_total{provider="gemini",status="other"}')).toBe(1)
    expect(sample(text, 'gatehouse_request_duration_seconds_count{provider="gemini"}')).toBe(1)
    expect(sample(text, 'gatehouse_upstream_tokens_total{provider="gemini",direction="input"}')).toBe(5)
    expect(sample(text, 'gatehouse_security_events_total{event_type="other"}')).toBe(1)
  })
})

describe('createMetrics options', () => {
  it.each<[unknown, string, RegExp]>([
    [{ prefix: 'bad-prefix' }, 'GH_METRICS_INVALID_OPTIONS', /prefix: must match pattern/],
    [{ prefx: 'x_' }, 'GH_METRICS_UNKNOWN_OPTION', /prefx: unknown key \(did you mean "prefix"\?\)/],
    [{ maxLabelValues: 0 }, 'GH_METRICS_INVALID_OPTIONS', /maxLabelValues: must be >= 1/],
    [{ durationBuckets: [1, 0.5] }, 'GH_METRICS_INVALID_OPTIONS', /durationBuckets must be increasing \(got \[1,0\.5\]\)/],
    [{ providers: ['Not Valid'] }, 'GH_METRICS_INVALID_OPTIONS', /providers\[0\]/],
    [{ isRateLimitViolation: true }, 'GH_METRICS_INVALID_OPTIONS', /isRateLimitViolation must be a function/],
  ])('rejects %j with %s', (options, code, message) => {
    expect(() => createMetrics(options as MetricsOptions)).toThrow(
      expect.objectContaining({ name: 'GatehouseConfigError', code, message: expect.stringMatching(/^@gatehouse\/metrics: /) }),
    )
    expect(() => createMetrics(options as MetricsOptions)).toThrow(message)
  })

  it('detects the factory passed to app.use() uncalled', async () => {
    const res = await request(createTestApp(createMetrics as unknown as RequestHandler)).get('/').expect(500)
    expect(res.body).toMatchObject({ code: 'GH_METRICS_NOT_CALLED' })
  })

  it('accepts an empty prefix and leaves the options object alone', () => {
    const options = Object.freeze({ prefix: '', processMetrics: false, providers: Object.freeze(['mistral']) })
    expect(createMetrics(options as unknown as MetricsOptions).names.authFailures).toBe('auth_failures_total')
  })
})

describe('posture findings gauge', () => {
  it('exposes the doctor findings by severity', async () => {
    const m = createMetrics({ prefix: 'gh_posture_', processMetrics: false })
    m.setPostureFindings({ high: 2, low: 1 })
    const text = await m.render()
    expect(text).toContain('gh_posture_security_posture_findings{severity="high"} 2')
    expect(text).toContain('gh_posture_security_posture_findings{severity="medium"} 0')
    expect(text).toContain('gh_posture_security_posture_findings{severity="low"} 1')
  })
})
