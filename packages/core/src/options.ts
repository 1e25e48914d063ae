import Ajv, { type ErrorObject, type SchemaObject, type ValidateFunction } from 'ajv'
import { GatehouseConfigError, type GatehouseErrorCode } from './errors'

/** Levenshtein distance, for did-you-mean hints on misspelled keys. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!
    prev[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1))
      diag = tmp
    }
  }
  return prev[b.length]!
}

/** The closest candidate to `word`, compared case-insensitively, or undefined if none is close. */
export function suggest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined
  let bestScore = Infinity
  const lower = word.toLowerCase().replace(/[-_]/g, '')
  for (const c of candidates) {
    const cl = c.toLowerCase().replace(/[-_]/g, '')
    const score = cl === lower ? 0 : editDistance(lower, cl)
    if (score < bestScore) {
      best = c
      bestScore = score
    }
  }
  return best !== undefined && bestScore <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined
}

/** Remove `undefined` values from plain objects, deeply: `undefined` means absent. */
export function stripUndefined<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => stripUndefined(v)) as T
  if (value === null || typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) return value
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (v !== undefined) out[k] = stripUndefined(v)
  }
  return out as T
}

export type PathStyle = 'js' | 'dotted'

/** `/allow/2/cidr` → `allow[2].cidr` (js) or `allow.2.cidr` (dotted, as config files are read). */
export function formatPath(instancePath: string, style: PathStyle, root = ''): string {
  const parts = instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  let out = root
  for (const part of parts) {
    if (style === 'js' && /^\d+$/.test(part)) out += `[${part}]`
    else out += out ? `.${part}` : part
  }
  return out
}

function schemaAt(schema: SchemaObject, schemaPath: string): SchemaObject | undefined {
  // schemaPath like "#/properties/server/additionalProperties"; we want the object holding it.
  const parts = schemaPath.replace(/^#\/?/, '').split('/').slice(0, -1)
  let node: unknown = schema
  for (const p of parts) {
    if (node === null || typeof node !== 'object') return undefined
    node = (node as Record<string, unknown>)[p.replace(/~1/g, '/').replace(/~0/g, '~')]
  }
  return node as SchemaObject | undefined
}

export interface DescribeOptions {
  style: PathStyle
  /** Prefix for every path (a config section). */
  root?: string
  /** The data that was validated, to quote bad values. */
  data?: unknown
  /** Keys whose values are never quoted (secrets). */
  secretKeys?: readonly string[]
}

function valueAt(data: unknown, instancePath: string): unknown {
  let node = data
  for (const p of instancePath.split('/').slice(1)) {
    if (node === null || typeof node !== 'object') return undefined
    node = (node as Record<string, unknown>)[p.replace(/~1/g, '/').replace(/~0/g, '~')]
  }
  return node
}

/** One readable line per ajv error: `server.tls.min_version: must be one of "1.2", "1.3" (got "1.1")`. */
export function describeAjvErrors(
  errors: readonly ErrorObject[],
  schema: SchemaObject,
  options: DescribeOptions,
): string[] {
  const lines = new Set<string>()
  const secret = new Set(options.secretKeys ?? [])
  // An anyOf whose schema has a description ("must be a duration…") speaks for all its branches.
  const described = new Map<string, string>()
  for (const e of errors) {
    const desc = (e.parentSchema as { description?: unknown } | undefined)?.description
    if ((e.keyword === 'anyOf' || e.keyword === 'oneOf') && typeof desc === 'string') described.set(e.instancePath, desc)
  }
  const quote = (instancePath: string): string => {
    if (options.data === undefined || instancePath.split('/').some((s) => secret.has(s))) return ''
    const v = valueAt(options.data, instancePath)
    return v !== undefined && (typeof v !== 'object' || v === null) ? ` (got ${JSON.stringify(v)})` : ''
  }
  for (const e of errors) {
    const path = formatPath(e.instancePath, options.style, options.root ?? '')
    const owner = [...described.keys()].find((p) => e.instancePath === p || e.instancePath.startsWith(`${p}/`))
    if (owner !== undefined) {
      if (e.instancePath === owner && (e.keyword === 'anyOf' || e.keyword === 'oneOf')) {
        lines.add(`${path || '(root)'}: ${described.get(owner)}${quote(e.instancePath)}`)
      }
      continue
    }
    // Undescribed anyOf/oneOf branches: the precise branch errors say more than the umbrella.
    if (e.keyword === 'anyOf' || e.keyword === 'oneOf' || e.keyword === 'if') continue
    if (e.keyword === 'additionalProperties') {
      const key = String((e.params as { additionalProperty: string }).additionalProperty)
      const at = formatPath(`${e.instancePath}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`, options.style, options.root ?? '')
      const props = Object.keys((schemaAt(schema, e.schemaPath)?.properties as object | undefined) ?? {})
      const hint = suggest(key, props)
      lines.add(`${at}: unknown key${hint ? ` (did you mean "${hint}"?)` : ''}`)
      continue
    }
    let message = e.message ?? 'is invalid'
    if (e.keyword === 'enum') {
      const allowed = (e.params as { allowedValues: unknown[] }).allowedValues
      message = `must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}`
    } else if (e.keyword === 'required') {
      const missing = (e.params as { missingProperty: string }).missingProperty
      lines.add(`${formatPath(`${e.instancePath}/${missing}`, options.style, options.root ?? '')}: is required`)
      continue
    }
    lines.add(`${path || '(root)'}: ${message}${quote(e.instancePath)}`)
  }
  return [...lines]
}

export interface OptionsResolverSpec {
  /** `@gatehouse/hsts` */
  pkg: string
  /** `GH_HSTS`: codes `<prefix>_INVALID_OPTIONS`, `<prefix>_UNKNOWN_OPTION`, `<prefix>_NOT_CALLED`. */
  codePrefix: `GH_${string}`
  /** JSON schema of the data-shaped options (function-valued ones are left out of it). */
  schema: SchemaObject
  /** Option names that hold functions or objects checked by hand; removed before ajv runs. */
  handChecked?: readonly string[]
  /** Option names whose values must never be quoted in errors. */
  secretKeys?: readonly string[]
}

let ajvInstance: Ajv | undefined
/** One Ajv for every package's resolver: each instance compiles JSON Schema's meta-schema again. */
function sharedAjv(): Ajv {
  return (ajvInstance ??= new Ajv({ allErrors: true, strict: false, allowUnionTypes: true, verbose: true }))
}

const looksLikeRequest = (v: unknown): boolean =>
  typeof v === 'object' &&
  v !== null &&
  'headers' in v &&
  'method' in v &&
  ('socket' in v || 'url' in v)

/**
 * Build the validator a middleware factory runs at construction: strips undefined, rejects unknown
 * keys with a did-you-mean hint, detects `app.use(factory)` passed uncalled, and throws a
 * GatehouseConfigError naming the option and the bad value.
 */
export function createOptionsResolver<T extends object>(spec: OptionsResolverSpec): (options: unknown) => T {
  // Compiled on first use: importing a package costs no schema compilation (a CLI command that
  // never builds a layer starts in a fraction of the time).
  let compiled: ValidateFunction | undefined
  const hand = new Set(spec.handChecked ?? [])
  return (options: unknown): T => {
    const validate = (compiled ??= sharedAjv().compile(spec.schema))
    if (looksLikeRequest(options) || typeof options === 'function') {
      throw new GatehouseConfigError(
        `${spec.codePrefix}_NOT_CALLED` as GatehouseErrorCode,
        `${spec.pkg}: the factory was passed to app.use() without being called; use app.use(factory(options))`,
      )
    }
    const raw = options === undefined ? {} : options
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new GatehouseConfigError(
        `${spec.codePrefix}_INVALID_OPTIONS` as GatehouseErrorCode,
        `${spec.pkg}: options must be an object (got ${JSON.stringify(raw)})`,
      )
    }
    const cleaned = stripUndefined({ ...(raw as Record<string, unknown>) })
    const data: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(cleaned)) if (!hand.has(k)) data[k] = v
    if (!validate(data)) {
      const errors = validate.errors ?? []
      const unknown = errors.find((e) => e.keyword === 'additionalProperties')
      const lines = describeAjvErrors(unknown ? [unknown] : errors, spec.schema, {
        style: 'js',
        data,
        secretKeys: spec.secretKeys ?? [],
      })
      const code = unknown ? `${spec.codePrefix}_UNKNOWN_OPTION` : `${spec.codePrefix}_INVALID_OPTIONS`
      throw new GatehouseConfigError(code as GatehouseErrorCode, `${spec.pkg}: ${lines.join('; ')}`)
    }
    return cleaned as T
  }
}
