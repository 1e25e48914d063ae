import type { SchemaObject } from 'ajv'

/**
 * The YAML schema takes each layer's keys from the JSON schema its package exports for its
 * options, so a bound a package sets (a length, a range, an enum) is the bound the YAML checks, and
 * a package option renamed or removed fails here, at start, instead of drifting. The YAML spells
 * options in snake_case: `maxFileAge` is `max_file_age`, in nested objects and list items too.
 */

type PackageSchema = { readonly properties?: Readonly<Record<string, unknown>> }

const snake = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

/** A package's property schema with every object key (and `required` entry) in snake_case. */
export function snakeCased(schema: unknown): SchemaObject {
  if (Array.isArray(schema)) return schema.map(snakeCased) as unknown as SchemaObject
  if (schema === null || typeof schema !== 'object') return schema as SchemaObject
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'properties' && v && typeof v === 'object') out[k] = Object.fromEntries(Object.entries(v).map(([p, s]) => [snake(p), snakeCased(s)]))
    else if (k === 'required' && Array.isArray(v)) out[k] = v.map((p: string) => snake(p))
    else if (k === 'enum' || k === 'const' || k === 'pattern') out[k] = v
    else out[k] = snakeCased(v)
  }
  return out
}

/**
 * YAML keys for the options `names` of a package's schema, each under its snake_case name. Where the
 * YAML accepts a narrower form than the package (a duration written "10s", a URL scheme), `narrow`
 * adds it: both must hold. The narrowing is checked first, so the YAML's coercion applies before the
 * package's check (`xss_protection: 0` is the header value "0", which hsts's enum holds).
 */
export function optionKeys(schema: PackageSchema, names: readonly string[], narrow: Readonly<Record<string, SchemaObject>> = {}): Record<string, SchemaObject> {
  const out: Record<string, SchemaObject> = {}
  const properties = schema.properties ?? {}
  for (const name of names) {
    if (!(name in properties)) throw new Error(`the package schema has no option ${name}`)
    const own = snakeCased(properties[name])
    const extra = narrow[snake(name)]
    out[snake(name)] = extra ? { allOf: [extra, own] } : own
  }
  for (const key of Object.keys(narrow)) if (!(key in out)) throw new Error(`narrow names ${key}, not one of the options taken`)
  return out
}
