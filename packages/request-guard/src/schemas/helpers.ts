import type { SchemaObject } from 'ajv'

// The building blocks of the body schemas.

export const str = { type: 'string' } as const
export const nullable = (...types: string[]): { type: string[] } => ({ type: [...types, 'null'] })
export const num = (min: number, max: number): SchemaObject => ({
  ...nullable('number'),
  minimum: min,
  maximum: max,
})
export const int = (min: number, max?: number): SchemaObject => ({
  ...nullable('integer'),
  minimum: min,
  ...(max === undefined ? {} : { maximum: max }),
})
/** `if` the object's `type` is `value` `then` … (the discriminated blocks every provider uses). */
export const whenType = (value: string, then: SchemaObject): SchemaObject => ({
  if: { required: ['type'], properties: { type: { const: value } } },
  then,
})
export const whenRole = (roles: string[], then: SchemaObject): SchemaObject => ({
  if: { required: ['role'], properties: { role: { enum: roles } } },
  then,
})
