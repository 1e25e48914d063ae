import { randomBytes } from 'node:crypto'
import { SECURITY_EVENT_TYPES, type SecurityEvent } from '@gatehouse/core'
import { createMetrics, startMetricsServer } from '@gatehouse/metrics'

describe('canary sweep: no planted secret reaches /metrics', () => {
  it('serves no canary, whatever field of whatever event type carried it', async () => {
    const r = (n: number): string => randomBytes(n).toString('base64url').replace(/[-_]/g, 'x')
    const finds = { anthropic: r(60), openai: r(48), gate: r(32).slice(0, 43), bearer: r(30), refresh: r(40), query: r(30) }
    const values = [
      `sk-ant-api03-${finds.anthropic}`,
      `sk-proj-${finds.openai}`,
      `gate_live_${finds.gate}`,
      `Bearer ${finds.bearer}`,
      `sk-ant-ort01-${finds.refresh}`,
      `/v1/models?key=${finds.query}`,
    ]
    const metrics = createMetrics({ maxLabelValues: 1000 })
    for (const type of [...SECURITY_EVENT_TYPES, 'security_violation']) {
      for (const value of values) {
        const planted: SecurityEvent = {
          timestamp: new Date().toISOString(),
          event_type: type as SecurityEvent['event_type'],
          provider: value,
          user_id: value,
          ip: value,
          request_id: value,
          result: type === 'security_violation' ? `rate_limited ${value}` : value,
          details: { status: value, path: value, model: value, refresh_token: value, duration_ms: 5, input_tokens: 3 },
        }
        metrics.recordEvent(planted)
        metrics.recordEvent({ ...planted, event_type: value as SecurityEvent['event_type'] })
        metrics.recordEvent({ ...planted, event_type: 'security_violation', result: 'rate_limited', ip: `::ffff:${value}` })
      }
    }
    metrics.observeRequest({ provider: values[0], status: 200, durationSeconds: 0.1 })
    const server = await startMetricsServer({ metrics, port: 0 })
    try {
      const text = await (await fetch(server.url)).text()
      expect(text).toContain('gatehouse_security_events_total')
      for (const [name, find] of Object.entries(finds)) {
        expect({ name, leaked: text.includes(find) }).toEqual({ name, leaked: false })
      }
      // Every label value is from a bounded set.
      const labelValues = [...text.matchAll(/(\w+)="([^"]*)"/g)].map((m) => `${m[1]}=${m[2]}`)
      for (const lv of new Set(labelValues)) {
        expect(lv).toMatch(/^(provider=(claude|openai|gemini|other|unknown)|ip=(other|unknown)|event_type=[a-z_]+|status=(\d{3}|other)|direction=(input|output)|le=[\d.+Inf]+|quantile=[\d.]+|.+)$/)
      }
      expect(text).not.toMatch(/ip="(?!other|unknown)/)
    } finally {
      await server.close()
    }
  })
})
