import { alertRuleSchema } from '@gatehouse/alerts'
import { auditLogOptionsSchema } from '@gatehouse/audit-log'
import { metricsServerOptionsSchema } from '@gatehouse/metrics'
import { configSchema } from '@gatehouse/server'
import { optionKeys, snakeCased } from '../src/config/compose'

/** The YAML schema takes each layer's keys from the schema its package exports. */

type Node = { properties?: Record<string, Node>; items?: Node; allOf?: Node[] }
const at = (path: string): Node => path.split('.').reduce<Node>((n, k) => (k === '[]' ? n.items! : n.properties![k]!), configSchema as Node)

describe('the config schema composed from the packages', () => {
  it('renames options to snake_case, in nested objects, list items and required lists, and keeps enums and patterns as written', () => {
    const s = snakeCased({ type: 'object', required: ['maxAge'], properties: { maxAge: { type: 'integer' }, inner: { items: { properties: { logId: { pattern: '^[A-Z]+$' }, mode: { enum: ['dropOldest'] } } } } } })
    expect(s).toEqual({ type: 'object', required: ['max_age'], properties: { max_age: { type: 'integer' }, inner: { items: { properties: { log_id: { pattern: '^[A-Z]+$' }, mode: { enum: ['dropOldest'] } } } } } })
  })

  it('refuses an option the package does not have, and a narrowing of an option not taken', () => {
    expect(() => optionKeys(metricsServerOptionsSchema, ['portt'])).toThrow('the package schema has no option portt')
    expect(() => optionKeys(metricsServerOptionsSchema, ['port'], { path: { type: 'string' } })).toThrow('narrow names path')
  })

  it("uses the packages' own bounds: a changed package schema changes the YAML", () => {
    expect(at('metrics.path')).toEqual(metricsServerOptionsSchema.properties.path)
    expect(at('alerts.[].name')).toEqual(alertRuleSchema.properties.name)
    expect(at('alerts.[].action')).toEqual(alertRuleSchema.properties.action)
    // Narrowed where the YAML takes a stricter form: both hold.
    expect(at('alerts.[].ttl').allOf?.[1]).toEqual(alertRuleSchema.properties.ttl)
    expect(at('logging.audit.events')).toEqual(auditLogOptionsSchema.properties.events)
    expect(at('logging.audit.retention').allOf?.[1]).toEqual(snakeCased(auditLogOptionsSchema.properties.retention))
  })
})
