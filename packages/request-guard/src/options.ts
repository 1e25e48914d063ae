import {
  GatehouseConfigError,
  createOptionsResolver,
  isLogger,
  noopLogger,
  parseSize,
  PROVIDER_NAMES,
  type Logger,
  type ProviderName,
  type SecurityEventHandler,
} from '@gatehouse/core'
import type { SchemaObject } from 'ajv'
import {
  resolveSecrets,
  secretsOptionsSchema,
  type SecretsConfig,
  type SecretsOptions,
} from './secrets-options'

const PKG = '@gatehouse/request-guard'

/** Per-provider settings (`providers.<name>` in the server config). */
export interface ProviderGuardOptions {
  /**
   * Highest value accepted in this provider's max-token fields; `false` turns the cap off for this
   * provider. Maps from `providers.<name>.max_tokens`.
   * @default the top-level `maxTokens`
   */
  maxTokens?: number | false | undefined
  /**
   * Caps per model: keys are model names or glob patterns (`*` any run of characters, `?` one
   * character; matched case-insensitively against the body's `model`, or the model in a Gemini
   * path). An exact name wins over a pattern; among patterns the longest wins. The value replaces
   * the provider cap for that model, so it may be higher or lower.
   * @default {}
   */
  models?: Record<string, number | false> | undefined
}

/** Options of `requestGuard()`. Every field is optional. */
export interface RequestGuardOptions {
  /**
   * Largest request body accepted, in bytes or as `"10mb"`, `"512kb"`. Checked against
   * Content-Length before anything is read, and counted while a chunked body streams in.
   * Maps from `server.body_limit`.
   * @default "10mb"
   */
  bodyLimit?: string | number | undefined
  /**
   * Default cap for `max_tokens`, `max_completion_tokens`, `max_output_tokens` and Gemini's
   * `generationConfig.maxOutputTokens`, for every provider without its own; `false` turns caps off.
   * @default 4096
   */
  maxTokens?: number | false | undefined
  /**
   * Per-provider caps (`claude`, `openai`, `gemini`).
   * @default {}
   */
  providers?: { [P in ProviderName]?: ProviderGuardOptions | undefined } | undefined
  /**
   * What to do with a max-token value above the cap: `reject` answers 400 naming the field;
   * `clamp` lowers the value to the cap in the forwarded bytes (nothing else in the body changes).
   * @default "reject"
   */
  onOverCap?: 'reject' | 'clamp' | undefined
  /**
   * When a request leaves its output cap out (or sets it to `null`), write the cap into the
   * forwarded body with the field the endpoint reads (`max_completion_tokens`, `max_tokens`,
   * `max_output_tokens`, `generationConfig.maxOutputTokens`), so every request's output is bounded.
   * @default true
   */
  insertCaps?: boolean | undefined
  /**
   * Most completions one request may ask for: OpenAI's `n` and `best_of`, Gemini's
   * `generationConfig.candidateCount`. Each multiplies the output; above it the request is refused
   * (or lowered, with `onOverCap: 'clamp'`).
   * @default 1
   */
  maxChoices?: number | undefined
  /**
   * Let OpenAI Responses run in the background (`background: true`). Their usage arrives after
   * the request is answered, where no limit or quota sees it, so they are refused by default.
   * @default false
   */
  allowBackground?: boolean | undefined
  /**
   * Deepest nesting of objects and arrays accepted. Checked on the raw text before JSON.parse.
   * @default 64
   */
  maxDepth?: number | undefined
  /**
   * Most entries accepted in one array, or keys in one object. Checked on the raw text before
   * JSON.parse.
   * @default 100000
   */
  maxElements?: number | undefined
  /**
   * Validate bodies of known endpoints against the provider's documented request schema. With
   * `false` only the size, JSON, structure and max-token checks run.
   * @default true
   */
  validateSchema?: boolean | undefined
  /**
   * Outbound secret detection: credentials (the rule table of @gatehouse/core) found in a body
   * are blocked, masked or logged, per rule, per provider and per request (`policy`). `false`
   * turns detection off.
   * @default block private keys and cloud credentials, log the rest
   */
  secrets?: SecretsOptions | false | undefined
  /** Receives a `security_violation` event for every refusal, every clamp and every credential found. */
  onEvent?: SecurityEventHandler | undefined
  /**
   * Where refusals are logged (at `debug`) and internal failures (at `error`).
   * @default a logger that does nothing
   */
  logger?: Logger | undefined
}

/** A compiled per-model cap. */
export interface ModelCap {
  pattern: string
  exact: boolean
  regex: RegExp
  cap: number | false
}

/** The resolved per-provider caps. */
export interface ProviderCaps {
  maxTokens: number | false
  models: readonly ModelCap[]
}

/** The resolved, frozen configuration. */
export interface RequestGuardConfig {
  readonly bodyLimit: number
  readonly providers: Readonly<Record<ProviderName, ProviderCaps>>
  readonly onOverCap: 'reject' | 'clamp'
  readonly insertCaps: boolean
  readonly maxChoices: number
  readonly allowBackground: boolean
  readonly maxDepth: number
  readonly maxElements: number
  readonly validateSchema: boolean
  /** Undefined when secret detection is off. */
  readonly secrets: SecretsConfig | undefined
  readonly onEvent: SecurityEventHandler | undefined
  readonly logger: Logger
}

const capSchema = {
  anyOf: [{ type: 'integer', minimum: 1 }, { const: false }],
} as const

const providerSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    maxTokens: capSchema,
    models: {
      type: 'object',
      propertyNames: { minLength: 1, maxLength: 200 },
      additionalProperties: capSchema,
    },
  },
} as const

/** The JSON schema of the data-shaped options (the server composes its config schema from it). */
export const requestGuardOptionsSchema: SchemaObject = {
  type: 'object',
  additionalProperties: false,
  properties: {
    bodyLimit: {
      anyOf: [
        { type: 'integer', minimum: 1 },
        { type: 'string', minLength: 1 },
      ],
    },
    maxTokens: capSchema,
    providers: {
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(PROVIDER_NAMES.map((p) => [p, providerSchema])),
    },
    onOverCap: { enum: ['reject', 'clamp'] },
    insertCaps: { type: 'boolean' },
    maxChoices: { type: 'integer', minimum: 1, maximum: 128 },
    allowBackground: { type: 'boolean' },
    maxDepth: { type: 'integer', minimum: 1, maximum: 10_000 },
    maxElements: { type: 'integer', minimum: 1, maximum: 100_000_000 },
    validateSchema: { type: 'boolean' },
    secrets: secretsOptionsSchema,
  },
}

const resolveRaw = createOptionsResolver<RequestGuardOptions>({
  pkg: PKG,
  codePrefix: 'GH_RG',
  schema: requestGuardOptionsSchema,
  handChecked: ['onEvent', 'logger'],
})

/** The `secrets.policy` hook, checked by hand: ajv sees the data-shaped rest of `secrets`. */
function policyHookOf(options: unknown): { policy?: unknown } {
  const secrets = (options as { secrets?: unknown } | null | undefined)?.secrets
  return secrets !== null &&
    typeof secrets === 'object' &&
    'policy' in secrets &&
    secrets.policy !== undefined
    ? { policy: secrets.policy }
    : {}
}

/** The options ajv checks: without the policy hook, and without `secrets: false` (detection off). */
function dataOptions(options: unknown): unknown {
  const secrets = (options as { secrets?: unknown } | null | undefined)?.secrets
  if (secrets !== false && !('policy' in policyHookOf(options))) return options
  const { secrets: _secrets, ...rest } = options as { secrets: Record<string, unknown> | false }
  if (secrets === false) return rest
  const { policy: _policy, ...data } = secrets as Record<string, unknown>
  return { ...rest, secrets: data }
}

/** Largest body limit accepted: one gibibyte (a Buffer of the whole body is kept). */
const MAX_BODY_LIMIT = 1024 ** 3

/** `gpt-4o*` → an anchored, case-insensitive RegExp. */
export function globToRegExp(pattern: string): RegExp {
  const body = pattern
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\/-]/g, '\\$&')))
    .join('')
  return new RegExp(`^${body}$`, 'i')
}

function compileModels(models: Record<string, number | false> | undefined): ModelCap[] {
  return Object.entries(models ?? {}).map(([pattern, cap]) =>
    Object.freeze({ pattern, exact: !/[*?]/.test(pattern), regex: globToRegExp(pattern), cap }),
  )
}

/** Validate options and build the frozen config. Throws GatehouseConfigError. */
export function resolveRequestGuardConfig(options: unknown): RequestGuardConfig {
  const opts = resolveRaw(dataOptions(options))
  const off = (options as { secrets?: unknown } | null | undefined)?.secrets === false
  const secrets = resolveSecrets(PKG, off ? false : { ...opts.secrets, ...policyHookOf(options) })
  if (opts.onEvent !== undefined && typeof opts.onEvent !== 'function') {
    throw new GatehouseConfigError('GH_RG_INVALID_OPTIONS', `${PKG}: onEvent: must be a function`)
  }
  if (opts.logger !== undefined && !isLogger(opts.logger)) {
    throw new GatehouseConfigError(
      'GH_RG_INVALID_OPTIONS',
      `${PKG}: logger: must have error, warn, info and debug methods`,
    )
  }
  let bodyLimit: number
  try {
    bodyLimit = parseSize(opts.bodyLimit ?? '10mb', 'bodyLimit')
  } catch (err) {
    throw new GatehouseConfigError('GH_RG_INVALID_OPTIONS', `${PKG}: ${(err as Error).message}`)
  }
  if (bodyLimit < 1 || bodyLimit > MAX_BODY_LIMIT) {
    throw new GatehouseConfigError(
      'GH_RG_INVALID_OPTIONS',
      `${PKG}: bodyLimit: must be between 1 byte and 1gb (got ${JSON.stringify(opts.bodyLimit)})`,
    )
  }
  const fallback = opts.maxTokens ?? 4096
  const providers = Object.fromEntries(
    PROVIDER_NAMES.map((name) => {
      const p = opts.providers?.[name]
      const caps: ProviderCaps = Object.freeze({
        maxTokens: p?.maxTokens ?? fallback,
        models: Object.freeze(compileModels(p?.models)),
      })
      return [name, caps]
    }),
  ) as Record<ProviderName, ProviderCaps>
  return Object.freeze({
    bodyLimit,
    providers: Object.freeze(providers),
    onOverCap: opts.onOverCap ?? 'reject',
    insertCaps: opts.insertCaps ?? true,
    maxChoices: opts.maxChoices ?? 1,
    allowBackground: opts.allowBackground ?? false,
    maxDepth: opts.maxDepth ?? 64,
    maxElements: opts.maxElements ?? 100_000,
    validateSchema: opts.validateSchema ?? true,
    secrets,
    onEvent: opts.onEvent,
    logger: opts.logger ?? noopLogger,
  })
}
