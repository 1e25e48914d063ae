import { GatehouseError, SecretMatcher, SECRET_RULES, type ProviderName } from '@gatehouse/core'
import type { Ctx } from './context'
import type { Answers } from './answers'
import { RequestGuardErrorCodes } from './errors'
import { withPolicy, type SecretActions, type SecretsConfig } from './secrets-options'
import { inspectSecrets, type SecretFindings } from './secrets'

/** What the secret screen decided for one body. */
export type Screened =
  /** Nothing to do: forward the body as it is (hits set to `log` were reported). */
  | undefined
  /** The request was answered (blocked): stop. */
  | 'answered'
  /** Forward this text instead (credentials masked). */
  | { masked: string }
  /** The `policy` hook failed: the request goes to `next(error)`, not upstream. */
  | { error: GatehouseError }

function policyError(reason: string, cause?: unknown): GatehouseError {
  return new GatehouseError(
    RequestGuardErrorCodes.GH_RG_SECRET_POLICY,
    `@gatehouse/request-guard: secrets.policy failed (${reason}); the request was not forwarded`,
    500,
    cause === undefined ? undefined : { cause },
  )
}

const RESULTS = { mask: 'secret_masked', log: 'secret_forwarded' } as const

/**
 * Outbound secret detection for one guard: which actions a request gets (the configured ones per
 * provider, under the `policy` hook's answer), the scan of its body, and the event or refusal.
 */
export function createSecretScreen(
  config: SecretsConfig,
  answers: Answers,
): (ctx: Ctx, text: string) => Screened {
  const matcher = new SecretMatcher(SECRET_RULES)
  /** A hook's policy object → the actions it makes per provider, validated once per object. */
  const merged = new WeakMap<object, Map<ProviderName, SecretActions>>()

  function actionsFor(ctx: Ctx): SecretActions | undefined {
    const provider = ctx.endpoint.provider
    const base = config.providers[provider]
    let policy: unknown
    try {
      policy = config.policy ? config.policy(ctx.req, ctx.res) : undefined
    } catch (err) {
      throw policyError(`it threw: ${err instanceof Error ? err.name : typeof err}`, err)
    }
    if (policy === false) return undefined
    if (policy === undefined) return base.allOff ? undefined : base
    const cached =
      typeof policy === 'object' && policy !== null ? merged.get(policy)?.get(provider) : undefined
    if (cached) return cached.allOff ? undefined : cached
    const actions = withPolicy(base, policy)
    if (typeof actions === 'string') throw policyError(`it returned ${actions}`)
    const key = policy as object
    const perProvider = merged.get(key) ?? new Map<ProviderName, SecretActions>()
    perProvider.set(provider, actions)
    merged.set(key, perProvider)
    return actions.allOff ? undefined : actions
  }

  function report(ctx: Ctx, found: SecretFindings): void {
    const details = { secrets: found.listed, count: found.count }
    if (found.action === 'block') {
      const { rule, json_path } = found.blocked!
      const field = json_path === '$' ? '' : json_path.replace(/^\$\.?/, '')
      answers.refuse(
        ctx,
        {
          status: 400,
          code: 'GH_RG_SECRET_DETECTED',
          message: `${ctx.endpoint.multipart ? 'the uploaded file' : `${json_path}:`} holds a credential (${rule}); this gateway does not forward credentials to the provider, remove it and send the request again`,
          ...(field ? { field } : {}),
          openaiCode: 'invalid_value',
        },
        details,
      )
      return
    }
    answers.emit(ctx, RESULTS[found.action], { code: 'GH_RG_SECRET_DETECTED', ...details })
    answers.log(
      'debug',
      `@gatehouse/request-guard: credential in the body ${found.action === 'mask' ? 'masked' : 'forwarded'}`,
      {
        path: ctx.pathname,
        rules: [...new Set(found.listed.map((s) => s.rule))],
        count: found.count,
      },
    )
  }

  /** Scan `text` (a body that passed every other check); throws GH_RG_SECRET_POLICY for a bad hook. */
  return function screen(ctx: Ctx, text: string): Screened {
    let actions: SecretActions | undefined
    try {
      actions = actionsFor(ctx)
    } catch (err) {
      const error = err as GatehouseError
      answers.log('error', error.message, { path: ctx.pathname })
      return { error }
    }
    if (!actions) return undefined
    const found = inspectSecrets(matcher, text, actions, ctx.endpoint.multipart ? 'text' : 'json')
    if (!found) return undefined
    report(ctx, found)
    if (found.action === 'block') return 'answered'
    return found.masked !== undefined ? { masked: found.masked } : undefined
  }
}
