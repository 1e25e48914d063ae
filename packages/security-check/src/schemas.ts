import { createOptionsResolver, GatehouseConfigError, isGatehouseError } from '@gatehouse/core'
import { PKG, SecurityCheckErrorCodes } from './errors'

// The JSON schemas of the library functions' options (exported: the server composes its config
// schema from them), and the resolver each function validates its options with.

const pathList = { type: 'array', items: { type: 'string', minLength: 1 } } as const
const size = {
  description: 'must be a number of bytes or a size such as "5mb"',
  anyOf: [
    { type: 'integer', minimum: 1 },
    { type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*(b|kb|mb|gb)?\\s*$' },
  ],
} as const
const mode = { type: 'integer', minimum: 0, maximum: 0o7777 } as const

export const checkPermissionsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['paths'],
  properties: {
    paths: { ...pathList, minItems: 1 },
    fix: { type: 'boolean' },
    fileMode: mode,
    dirMode: mode,
    owner: { type: 'integer', minimum: 0 },
    cwd: { type: 'string', minLength: 1 },
  },
} as const

export const scanSecretsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    paths: pathList,
    staged: { type: 'boolean' },
    cwd: { type: 'string', minLength: 1 },
    maxFileSize: size,
    baseline: { type: 'string', minLength: 1 },
    honeytokens: { type: 'string', minLength: 1 },
    gitignore: { type: 'boolean' },
    exclude: pathList,
  },
} as const

export const checkTlsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['cert'],
  properties: {
    cert: { type: 'string', minLength: 1 },
    key: { type: 'string', minLength: 1 },
    minDays: { type: 'number', minimum: 0 },
    cwd: { type: 'string', minLength: 1 },
  },
} as const

export const runAllSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    cwd: { type: 'string', minLength: 1 },
    authDir: { type: 'string', minLength: 1 },
    fix: { type: 'boolean' },
    paths: pathList,
    baseline: { type: 'string', minLength: 1 },
    maxFileSize: size,
    cert: { type: 'string', minLength: 1 },
    key: { type: 'string', minLength: 1 },
    minDays: { type: 'number', minimum: 0 },
    audit: { type: 'boolean' },
    auditTimeout: {
      description: 'must be a number of milliseconds or a duration such as "2m"',
      anyOf: [
        { type: 'integer', minimum: 1 },
        { type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|h)\\s*$' },
      ],
    },
  },
} as const

export const installHookSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    cwd: { type: 'string', minLength: 1 },
    force: { type: 'boolean' },
    cliPath: { type: 'string', minLength: 1 },
  },
} as const

export function resolver<T extends object>(
  fn: string,
  schema: object,
  handChecked: readonly string[] = [],
): (options: unknown) => T {
  const resolve = createOptionsResolver<T>({
    pkg: `${PKG}: ${fn}()`,
    codePrefix: 'GH_SC',
    schema,
    handChecked,
  })
  return (options: unknown): T => {
    if (typeof options === 'function') {
      throw new GatehouseConfigError(
        SecurityCheckErrorCodes.GH_SC_INVALID_OPTIONS,
        `${PKG}: ${fn}() takes an options object, not a function`,
      )
    }
    try {
      return resolve(options)
    } catch (err) {
      // core's "passed to app.use() uncalled" check does not apply to a function call.
      if (isGatehouseError(err) && err.code === SecurityCheckErrorCodes.GH_SC_NOT_CALLED) {
        throw new GatehouseConfigError(
          SecurityCheckErrorCodes.GH_SC_INVALID_OPTIONS,
          `${PKG}: ${fn}() takes an options object`,
        )
      }
      throw err
    }
  }
}
