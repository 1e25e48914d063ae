import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import YAML from 'yaml'
import { configSchema, loadConfig } from '@gatehouse/server'

const root = join(__dirname, '..', '..', '..')
const examplePath = join(root, 'config.example.yaml')

/**
 * Every leaf path the schema defines (objects walked, arrays and unions as leaves; a map keyed by
 * data, secret_detection's rule ids, is one leaf).
 */
function schemaPaths(schema: Record<string, unknown>, prefix = ''): string[] {
  const props = schema.properties as Record<string, Record<string, unknown>> | undefined
  if (!props || schema.type !== 'object' || (prefix.startsWith('secret_detection') && /(^|\.)rules$/.test(prefix))) return [prefix]
  return Object.entries(props).flatMap(([k, v]) => schemaPaths(v, prefix ? `${prefix}.${k}` : k))
}

function docPaths(value: unknown, prefix = ''): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [prefix]
  return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => [prefix ? `${prefix}.${k}` : k, ...docPaths(v, prefix ? `${prefix}.${k}` : k)])
}

describe('config.example.yaml', () => {
  it('is a valid config', () => {
    expect(() => loadConfig({ file: examplePath, env: {}, cwd: root })).not.toThrow()
  })

  it('documents every key of the schema', () => {
    const documented = new Set(docPaths(YAML.parse(readFileSync(examplePath, 'utf8'))))
    const missing = schemaPaths(configSchema as Record<string, unknown>).filter((p) => !documented.has(p))
    expect(missing).toEqual([])
  })
})
