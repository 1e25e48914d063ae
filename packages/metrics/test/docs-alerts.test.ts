import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { createMetrics } from '@gatehouse/metrics'

interface PromRule {
  alert: string
  expr: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  for?: string
}

const file = join(__dirname, '..', '..', '..', 'docs', 'prometheus-alerts.yml')

describe('docs/prometheus-alerts.yml', () => {
  const doc = parse(readFileSync(file, 'utf8')) as { groups: Array<{ name: string; rules: PromRule[] }> }

  it('is a Prometheus rule file: groups with a name and rules with alert and expr', () => {
    expect(Object.keys(doc)).toEqual(['groups'])
    expect(doc.groups.length).toBeGreaterThan(0)
    for (const group of doc.groups) {
      expect(typeof group.name).toBe('string')
      for (const rule of group.rules) {
        expect(Object.keys(rule).every((k) => ['alert', 'expr', 'for', 'labels', 'annotations', 'keep_firing_for'].includes(k))).toBe(true)
        expect(rule.alert).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/)
        expect(typeof rule.expr).toBe('string')
        for (const v of Object.values({ ...rule.labels, ...rule.annotations })) expect(typeof v).toBe('string')
      }
    }
  })

  it('gives the two seed rules, over the same windows and thresholds as the config, the degraded-store rules and the unaudited-changes rule', () => {
    const rules = doc.groups.flatMap((g) => g.rules)
    expect(rules.map((r) => [r.labels?.action, r.expr])).toEqual([
      ['notify_admin', 'sum(increase(gatehouse_auth_failures_total[5m])) > 100'],
      ['block_ip', 'sum by (ip) (increase(gatehouse_rate_limit_violations_total{ip!~"shared|other"}[1m])) > 50'],
      ['notify_admin', 'max by (instance) (gatehouse_rate_limit_store_degraded) > 0'],
      ['notify_admin', 'max(gatehouse_client_keys_expiring{within="1d"}) > 0'],
      ['notify_admin', 'max by (instance) (gatehouse_shared_state_degraded) > 0'],
      ['notify_admin', 'sum by (instance, action) (increase(gatehouse_unaudited_changes_total[5m])) > 0'],
    ])
  })

  it('references only metric names the package exports', async () => {
    const metrics = createMetrics()
    metrics.trackRateLimitStore({ degraded: () => true, fallbackCount: () => 3 })
    metrics.trackSharedState({ degraded: () => true })
    const soon = new Date(Date.now() + 3_600_000).toISOString()
    metrics.trackKeyExpiry({ list: () => [{ expires_at: soon }, { expires_at: new Date(Date.now() + 3 * 86_400_000).toISOString() }, { expires_at: soon, revoked_at: soon }, {}] })
    const exported = new Set(metrics.registry.getMetricsAsArray().map((m) => (m as unknown as { name: string }).name))
    const referenced = doc.groups.flatMap((g) => g.rules).flatMap((r) => [...r.expr.matchAll(/\b(gatehouse_[a-z_]+)\b/g)].map((m) => m[1]!))
    expect(referenced.length).toBeGreaterThan(0)
    for (const name of referenced) expect(exported).toContain(name)
    const text = await metrics.render()
    expect(text).toContain('# TYPE gatehouse_auth_failures_total counter')
    expect(text).toContain('gatehouse_rate_limit_store_degraded 1')
    expect(text).toContain('gatehouse_rate_limit_store_fallbacks_total 3')
    expect(text).toContain('gatehouse_shared_state_degraded 1')
    expect(text).toContain('gatehouse_client_keys_expiring{within="1d"} 1')
    expect(text).toContain('gatehouse_client_keys_expiring{within="7d"} 2')
  })
})
