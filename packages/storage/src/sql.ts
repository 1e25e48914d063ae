import { GatehouseConfigError } from '@gatehouse/core'
import { StorageErrorCodes } from './errors'

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/

/**
 * Identifiers (schema and role names) cannot be query parameters, so they are restricted to
 * lower-case letters, digits and `_` (at most 63 characters) and always double-quoted.
 */
export function assertIdentifier(value: unknown, name: string): string {
  if (typeof value !== 'string' || !IDENTIFIER.test(value)) {
    throw new GatehouseConfigError(
      StorageErrorCodes.GH_STORAGE_INVALID_SCHEMA,
      `@gatehouse/storage: ${name} must be 1 to 63 lower-case letters, digits or "_", not starting with a digit (got ${JSON.stringify(value)})`,
    )
  }
  return value
}

/** `"name"`, for an identifier already checked by assertIdentifier. */
export const ident = (name: string): string => `"${name}"`

/** `INSERT INTO "s"."t" (a, b) VALUES ($1, $2), ($3, $4)`: every value a parameter. */
export function insertSql(schema: string, table: string, columns: readonly string[], rows: number): string {
  const width = columns.length
  const tuples: string[] = []
  for (let r = 0; r < rows; r++) {
    const params: string[] = []
    for (let c = 1; c <= width; c++) params.push(`$${r * width + c}`)
    tuples.push(`(${params.join(', ')})`)
  }
  return `INSERT INTO ${ident(schema)}.${ident(table)} (${columns.join(', ')}) VALUES ${tuples.join(', ')}`
}
