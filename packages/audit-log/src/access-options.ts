import type { Request, Response } from 'express'
import { createOptionsResolver, isLogger, type Logger, type SecurityEventHandler } from '@gatehouse/core'
import { invalid, noopLoggerCopy } from './options'

const PKG = '@gatehouse/audit-log'

/** Options of the `accessLog()` middleware. */
export interface AccessLogOptions {
  /**
   * Receives one `provider_request` event per request, when the response has finished or the
   * client went away. Pass the audit logger's `log` (and anything else, e.g. metrics). Required.
   */
  onEvent: SecurityEventHandler
  /** Return true to leave a request out of the access log (health checks). @default undefined */
  skip?: (req: Request, res: Response) => boolean
  /**
   * Extra fields for the event's details, read when the response ends (e.g. the upstream
   * credential's id). Values are masked like every other field. @default undefined
   */
  details?: (req: Request, res: Response) => Record<string, unknown> | undefined
  /**
   * Literal secrets masked in the logged path, on top of the built-in credential formats.
   * @default []
   */
  knownSecrets?: string[]
  /** Where a failing `onEvent` is reported. @default a no-op logger */
  logger?: Logger
}

export interface AccessLogConfig {
  readonly onEvent: SecurityEventHandler
  readonly skip: ((req: Request, res: Response) => boolean) | undefined
  readonly details: ((req: Request, res: Response) => Record<string, unknown> | undefined) | undefined
  readonly knownSecrets: readonly string[]
  readonly logger: Logger
}

export const accessLogOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    onEvent: {},
    skip: {},
    details: {},
    knownSecrets: { type: 'array', items: { type: 'string' } },
    logger: {},
  },
} as const

const resolveAccessRaw = createOptionsResolver<AccessLogOptions>({
  pkg: PKG,
  codePrefix: 'GH_AUDIT',
  schema: accessLogOptionsSchema,
  handChecked: ['onEvent', 'skip', 'details', 'logger'],
  secretKeys: ['knownSecrets'],
})

export function resolveAccessLogConfig(options: AccessLogOptions): AccessLogConfig {
  const raw = resolveAccessRaw(options)
  if (typeof raw.onEvent !== 'function') throw invalid('onEvent is required: a function that receives each event')
  if (raw.skip !== undefined && typeof raw.skip !== 'function') throw invalid('skip must be a function')
  if (raw.details !== undefined && typeof raw.details !== 'function') throw invalid('details must be a function')
  if (raw.logger !== undefined && !isLogger(raw.logger)) {
    throw invalid('logger must have error, warn, info and debug methods')
  }
  return Object.freeze({
    onEvent: raw.onEvent,
    skip: raw.skip,
    details: raw.details,
    knownSecrets: Object.freeze([...(raw.knownSecrets ?? [])]),
    logger: raw.logger ?? noopLoggerCopy(),
  })
}
