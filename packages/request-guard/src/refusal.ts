import type { ErrorObject } from 'ajv'
import type { RequestGuardConfig } from './options'
import type { PathSegment, ScanFailure } from './scan'
import { formatField } from './fields'
import type { RequestGuardErrorCode } from './errors'

/** Why a request is refused: what the client is told (in its provider's shape) and the event says. */
export interface Refusal {
  status: number
  code: RequestGuardErrorCode
  message: string
  field?: string
  /** OpenAI's machine-readable `code`; omitted means the default for the status. */
  openaiCode?: string | null
  limit?: number
}

/** The refusal for each failure of the structural scan (a syntax failure is `malformed`). */
export const FAILURES: Record<
  Exclude<ScanFailure['kind'], 'syntax'>,
  (field: string, config: RequestGuardConfig) => Refusal
> = {
  depth: (field, c) => ({
    status: 400,
    code: 'GH_RG_TOO_DEEP',
    message: `${field || 'body'}: objects and arrays are nested deeper than ${c.maxDepth} levels`,
    field,
    limit: c.maxDepth,
  }),
  elements: (field, c) => ({
    status: 413,
    code: 'GH_RG_TOO_MANY_ELEMENTS',
    message: `${field || 'body'}: more than ${c.maxElements} entries`,
    field,
    openaiCode: 'array_above_max_length',
    limit: c.maxElements,
  }),
  forbidden_key: (field) => ({
    status: 400,
    code: 'GH_RG_FORBIDDEN_KEY',
    message: `${field}: this key is not allowed in a request body`,
    field,
  }),
  duplicate_key: (field) => ({
    status: 400,
    code: 'GH_RG_DUPLICATE_KEY',
    message: `${field}: the same key appears twice in one object`,
    field,
  }),
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean',
  array: 'an array',
  object: 'an object',
  null: 'null',
}

function valueAt(data: unknown, path: readonly PathSegment[]): unknown {
  let node = data
  for (const seg of path) {
    if (node === null || typeof node !== 'object') return undefined
    node = (node as Record<string | number, unknown>)[seg]
  }
  return node
}

function ajvPath(instancePath: string): PathSegment[] {
  if (!instancePath) return []
  return instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p))
}

/** Turn the one ajv error into a refusal that names the field, without quoting the body. */
export function schemaRefusal(errors: readonly ErrorObject[], body: unknown): Refusal {
  const e = errors.find((x) => x.keyword !== 'if') ?? errors[0]!
  const path = ajvPath(e.instancePath)
  const p = e.params as Record<string, unknown>
  if (e.keyword === 'required') path.push(String(p.missingProperty))
  const field = formatField(path)
  const name = field || 'body'
  const value = valueAt(body, path)
  const isInt = typeof value === 'number' && Number.isInteger(value)
  let problem: string
  let openaiCode: string | null
  switch (e.keyword) {
    case 'required':
      problem = 'is required'
      openaiCode = 'missing_required_parameter'
      break
    case 'type': {
      const types = Array.isArray(p.type) ? (p.type as string[]) : [String(p.type)]
      problem = `must be ${types.map((t) => TYPE_NAMES[t] ?? t).join(' or ')}`
      openaiCode = 'invalid_type'
      break
    }
    case 'minimum':
      problem = `must be >= ${String(p.limit)}`
      openaiCode = isInt ? 'integer_below_min_value' : 'decimal_below_min_value'
      break
    case 'maximum':
      problem = `must be <= ${String(p.limit)}`
      openaiCode = isInt ? 'integer_above_max_value' : 'decimal_above_max_value'
      break
    case 'enum':
      problem = `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`
      openaiCode = 'invalid_value'
      break
    case 'const':
      problem = `must be ${JSON.stringify(p.allowedValue)}`
      openaiCode = 'invalid_value'
      break
    case 'minItems':
      problem = p.limit === 1 ? 'must not be empty' : `must have at least ${String(p.limit)} items`
      openaiCode = p.limit === 1 ? 'empty_array' : 'array_below_min_length'
      break
    case 'maxItems':
      problem = `must have at most ${String(p.limit)} items`
      openaiCode = 'array_above_max_length'
      break
    case 'minLength':
      problem = p.limit === 1 ? 'must not be empty' : `must have at least ${String(p.limit)} characters`
      openaiCode = 'string_below_min_length'
      break
    case 'pattern':
      problem = 'must be an integer'
      openaiCode = 'invalid_value'
      break
    default:
      problem = e.message ?? 'is invalid'
      openaiCode = 'invalid_value'
  }
  return { status: 400, code: 'GH_RG_INVALID_BODY', message: `${name}: ${problem}`, field, openaiCode }
}

export const tooLarge = (limit: number): Refusal => ({
  status: 413,
  code: 'GH_RG_BODY_TOO_LARGE',
  message: `the request body is larger than ${limit} bytes`,
  limit,
})

export const malformed = (message: string): Refusal => ({
  status: 400,
  code: 'GH_RG_MALFORMED_JSON',
  message,
  openaiCode: null,
})
