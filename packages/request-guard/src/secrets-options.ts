import type { Request, Response } from 'express'
import { GatehouseConfigError, PROVIDER_NAMES, SECRET_RULE_IDS, type ProviderName } from '@gatehouse/core'

/**
 * What the guard does with a credential found in a request body: `block` refuses the request
 * (400), `mask` replaces the credential with `[REDACTED:<rule id>]` in the forwarded bytes, `log`
 * forwards the body unchanged, `off` ignores the rule. Every action but `off` emits an event.
 */
export type SecretAction = 'block' | 'mask' | 'log' | 'off'

export const SECRET_ACTIONS: readonly SecretAction[] = ['block', 'mask', 'log', 'off']

/** Actions per rule id (`SECRET_RULE_IDS` of @gatehouse/core) and for every rule not named. */
export interface SecretPolicy {
  /**
   * The action for every rule that no `rules` entry names, here or in the built-in list.
   * @default "log"
   */
  default?: SecretAction | undefined
  /** The action per rule id, e.g. `{ 'github-token': 'mask' }`. */
  rules?: { [ruleId: string]: SecretAction | undefined } | undefined
}

/** The `secrets` option: outbound secret detection. */
export interface SecretsOptions extends SecretPolicy {
  /** Per-provider overrides, above the top-level `rules` and `default`. */
  providers?: { [P in ProviderName]?: SecretPolicy | undefined } | undefined
  /**
   * Called once per request with a body; returns the policy for this request (say, per client key,
   * from `res.locals.gatehouse.clientKeyId`), above everything else, `false` to skip detection for
   * this request, or undefined for the configured policy. A hook that throws or returns anything
   * else fails the request closed (`GH_RG_SECRET_POLICY`).
   */
  policy?: ((req: Request, res: Response) => SecretPolicy | false | undefined) | undefined
}

/**
 * Blocked unless configured otherwise: private keys and cloud credentials, which open
 * infrastructure and data rather than one API, and are never needed by a model to answer.
 */
export const DEFAULT_BLOCKED_RULES: readonly string[] = Object.freeze([
  'private-key',
  'aws-access-key-id',
  'aws-secret-access-key',
  'age-secret-key',
  'google-oauth-client-secret',
  'google-oauth-access-token',
  'digitalocean-token',
  'databricks-token',
])

const actionSchema = { enum: SECRET_ACTIONS } as const

const policySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    default: actionSchema,
    rules: {
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(SECRET_RULE_IDS.map((id) => [id, actionSchema])),
    },
  },
} as const

/**
 * The JSON schema of `secrets` as an object. `false` (detection off) and the `policy` hook are
 * checked by hand, so an error names the one bad field.
 */
export const secretsOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...policySchema.properties,
    providers: {
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(PROVIDER_NAMES.map((p) => [p, policySchema])),
    },
  },
} as const

/** The actions one request gets: an explicit action per rule, and the action for the rest. */
export interface SecretActions {
  readonly explicit: ReadonlyMap<string, SecretAction>
  readonly fallback: SecretAction
  /** No rule is on: the body is not scanned. */
  readonly allOff: boolean
}

/** The resolved `secrets` option. */
export interface SecretsConfig {
  readonly providers: Readonly<Record<ProviderName, SecretActions>>
  readonly policy: SecretsOptions['policy']
}

function actionsOf(layers: readonly (SecretPolicy | undefined)[]): SecretActions {
  const explicit = new Map<string, SecretAction>()
  // The lowest layer first, so a higher layer's entry replaces it.
  for (const layer of layers)
    for (const [id, a] of Object.entries(layer?.rules ?? {})) if (a) explicit.set(id, a)
  let fallback: SecretAction = 'log'
  for (const layer of layers) if (layer?.default) fallback = layer.default
  return Object.freeze({ explicit, fallback, allOff: isAllOff(explicit, fallback) })
}

function isAllOff(explicit: ReadonlyMap<string, SecretAction>, fallback: SecretAction): boolean {
  return SECRET_RULE_IDS.every((id) => (explicit.get(id) ?? fallback) === 'off')
}

const BUILT_IN: SecretPolicy = { rules: Object.fromEntries(DEFAULT_BLOCKED_RULES.map((id) => [id, 'block'])) }

/**
 * The `secrets` option (already checked against its schema) as actions per provider: an entry in
 * `rules` wins over any `default`; a provider's entries win over the top level's, which win over
 * the built-in list. Undefined when detection is off (`false`).
 */
export function resolveSecrets(
  pkg: string,
  secrets: (Omit<SecretsOptions, 'policy'> & { policy?: unknown }) | false | undefined,
): SecretsConfig | undefined {
  if (secrets === false) return undefined
  const s = secrets ?? {}
  if (s.policy !== undefined && typeof s.policy !== 'function') {
    throw new GatehouseConfigError('GH_RG_INVALID_OPTIONS', `${pkg}: secrets.policy: must be a function`)
  }
  const top: SecretPolicy = { default: s.default, rules: s.rules }
  const providers = Object.fromEntries(
    PROVIDER_NAMES.map((name) => [name, actionsOf([BUILT_IN, top, s.providers?.[name]])]),
  ) as Record<ProviderName, SecretActions>
  return Object.freeze({ providers: Object.freeze(providers), policy: s.policy as SecretsOptions['policy'] })
}

const RULE_IDS: ReadonlySet<string> = new Set(SECRET_RULE_IDS)
const ACTIONS: ReadonlySet<unknown> = new Set(SECRET_ACTIONS)

/** A policy hook's answer laid over the configured actions; a string says what is wrong with it. */
export function withPolicy(base: SecretActions, policy: unknown): SecretActions | string {
  if (policy === null || typeof policy !== 'object' || Array.isArray(policy))
    return 'not an object, false or undefined'
  const { default: fallback, rules, ...rest } = policy as SecretPolicy
  if (Object.keys(rest).length > 0) return `unknown key ${JSON.stringify(Object.keys(rest)[0])}`
  if (fallback !== undefined && !ACTIONS.has(fallback))
    return `default: not an action (${JSON.stringify(fallback)})`
  const explicit = new Map(base.explicit)
  if (rules !== undefined) {
    if (rules === null || typeof rules !== 'object') return 'rules: not an object'
    for (const [id, a] of Object.entries(rules)) {
      if (!RULE_IDS.has(id)) return `rules: unknown rule ${JSON.stringify(id)}`
      if (a === undefined) continue
      if (!ACTIONS.has(a)) return `rules.${id}: not an action (${JSON.stringify(a)})`
      explicit.set(id, a)
    }
  }
  // The policy's own rules win over everything; its default over the configured defaults only.
  const merged = fallback ?? base.fallback
  return Object.freeze({ explicit, fallback: merged, allOff: isAllOff(explicit, merged) })
}
