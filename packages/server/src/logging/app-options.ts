import { createOptionsResolver, GatehouseConfigError } from '@gatehouse/core'
import { ServerErrorCodes } from '../errors'

const PKG = '@gatehouse/server'

const invalid = (message: string): GatehouseConfigError => new GatehouseConfigError(ServerErrorCodes.GH_SERVER_INVALID_OPTIONS, `${PKG}: ${message}`)

/** winston's npm levels, most severe first. */
export const APP_LOG_LEVELS = ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'] as const
export type AppLogLevel = (typeof APP_LOG_LEVELS)[number]

/** Options of `createAppLogger()`. */
export interface AppLoggerOptions {
  /** Lowest level written (`logging.level`). @default 'info' */
  level?: AppLogLevel
  /** Literal secrets masked wherever they appear. @default [] */
  knownSecrets?: string[]
  /** Fields added to every line (e.g. `{ service: 'gatehouse' }`). Masked like the rest. @default {} */
  defaultMeta?: Record<string, unknown>
  /** Where info and lower levels go. @default process.stdout */
  stdout?: NodeJS.WritableStream
  /** Where warn and error go. @default process.stderr */
  stderr?: NodeJS.WritableStream
}

export interface AppLoggerConfig {
  readonly level: AppLogLevel
  readonly knownSecrets: readonly string[]
  readonly defaultMeta: Readonly<Record<string, unknown>>
  readonly stdout: NodeJS.WritableStream
  readonly stderr: NodeJS.WritableStream
}

export const appLoggerOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    level: { type: 'string', enum: [...APP_LOG_LEVELS] },
    knownSecrets: { type: 'array', items: { type: 'string' } },
    defaultMeta: { type: 'object' },
    stdout: {},
    stderr: {},
  },
} as const

const resolveAppRaw = createOptionsResolver<AppLoggerOptions>({
  pkg: PKG,
  codePrefix: 'GH_SERVER',
  schema: appLoggerOptionsSchema,
  handChecked: ['stdout', 'stderr'],
  secretKeys: ['knownSecrets'],
})

const isWritable = (v: unknown): v is NodeJS.WritableStream =>
  typeof v === 'object' && v !== null && typeof (v as { write?: unknown }).write === 'function'

export function resolveAppLoggerConfig(options: AppLoggerOptions): AppLoggerConfig {
  const raw = resolveAppRaw(options)
  for (const name of ['stdout', 'stderr'] as const) {
    if (raw[name] !== undefined && !isWritable(raw[name])) throw invalid(`${name} must be a writable stream`)
  }
  return Object.freeze({
    level: raw.level ?? 'info',
    knownSecrets: Object.freeze([...(raw.knownSecrets ?? [])]),
    defaultMeta: Object.freeze({ ...(raw.defaultMeta ?? {}) }),
    stdout: raw.stdout ?? process.stdout,
    stderr: raw.stderr ?? process.stderr,
  })
}
