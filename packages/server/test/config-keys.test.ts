import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { configSchema } from '@gatehouse/server'

/**
 * Every key the config accepts is enforced or removed: a key no code reads is a promise the
 * gateway does not keep (the way `storage.store_bodies` once was accepted and did nothing). Each
 * leaf of the schema must be read by name somewhere in the server's code, outside the schema, the
 * defaults and the types; a key with a single allowed value states a fixed fact and is exempt.
 */

type Schema = { type?: string; properties?: Record<string, Schema>; items?: Schema; enum?: unknown[]; anyOf?: Schema[]; additionalProperties?: unknown }

/** Keys handed on whole to a package (spread), which reads them there. */
const PASSED_WHOLE: Record<string, string> = {
  'alerts[].duration': 'each alert rule is given to the alert engine as written (alertsAdapter)',
  'alerts[].ttl': 'each alert rule is given to the alert engine as written (alertsAdapter)',
}

/** Objects whose keys are data (secret rule ids from core's rule table), not config keys: one leaf each. */
const isMap = (path: string): boolean => /(^|\.)rules$/.test(path) && path.startsWith('secret_detection')

function leaves(schema: Schema, path: string, out: Array<{ path: string; schema: Schema }>): typeof out {
  if (schema.type === 'object' && schema.properties && !isMap(path)) {
    for (const [k, v] of Object.entries(schema.properties)) leaves(v, path ? `${path}.${k}` : k, out)
  } else if (schema.type === 'array' && schema.items?.type === 'object' && schema.items.properties) {
    for (const [k, v] of Object.entries(schema.items.properties)) leaves(v, `${path}[].${k}`, out)
  } else out.push({ path, schema })
  return out
}

function serverCode(dir: string): string {
  return readdirSync(dir)
    .map((name) => join(dir, name))
    .map((p) => (statSync(p).isDirectory() ? serverCode(p) : p.endsWith('.ts') && !/config[\\/](schema|defaults|types)\.ts$/.test(p) ? readFileSync(p, 'utf8') : ''))
    .join('\n')
}

describe('every config key is enforced', () => {
  const code = serverCode(join(__dirname, '..', 'src'))
  const all = leaves(configSchema as Schema, '', [])

  it('finds the schema (a sanity check of the walk)', () => {
    expect(all.length).toBeGreaterThan(100)
    expect(all.map((l) => l.path)).toEqual(expect.arrayContaining(['server.trust_proxy', 'storage.store_bodies', 'logging.audit.sinks[].ca_file']))
  })

  it('reads each key by name in the server (or hands it on whole)', () => {
    const unread = all
      .filter(({ path, schema }) => !(schema.enum && schema.enum.length === 1) && !PASSED_WHOLE[path])
      .filter(({ path }) => {
        const name = path.split('.').pop()!.replace('[]', '')
        return !new RegExp(`[.'"\`]${name}\\b`).test(code)
      })
      .map(({ path }) => path)
    expect(unread).toEqual([])
  })
})
