import type { RequestGuardConfig } from './options'
import type { Endpoint } from './endpoints'
import type { BodyValidators } from './schemas'
import { pathId, type PathSegment } from './scan'
import { formatField } from './fields'
import {
  capFor,
  capInsertPath,
  choiceSites,
  findCapSites,
  geminiBatchRefusal,
  outputUnits,
  requestedTokens,
  UNCAPPED_OUTPUT_TOKENS,
  type CapSite,
} from './caps'
import { schemaRefusal, type Refusal } from './refusal'

/** One number the guard writes into the forwarded body. */
export interface CapEdit {
  path: PathSegment[]
  cap: number
}

/** What `checkBody` found in an acceptable body. */
export interface Checked {
  /** Values above their bound, lowered in the forwarded bytes (`onOverCap: 'clamp'`). */
  clamps: CapEdit[]
  /** Caps written where the request set none (`insertCaps`). */
  inserts: CapEdit[]
  maxTokens: number | undefined
  /** The effective output bound: each request's cap × its choices, summed over nested requests. */
  outputTokens: number
}

/** What the max-token fields of a body ask for, once checked against their caps. */
interface CapCheck {
  sites: CapSite[]
  clamps: CapEdit[]
  maxTokens: number | undefined
  /** Each cap field's value once clamped (absent for null), by `pathId`. */
  effective: Map<string, number>
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v)

/** Structure, schema and caps on a parsed body; returns the refusal or the edits to make. */
export function checkBody(
  config: RequestGuardConfig,
  validators: BodyValidators,
  method: string,
  endpoint: Endpoint,
  body: unknown,
): Refusal | Checked {
  if (!isPlainObject(body)) {
    return {
      status: 400,
      code: 'GH_RG_NOT_AN_OBJECT',
      message: 'the request body must be a JSON object',
      openaiCode: 'invalid_type',
    }
  }
  if (endpoint.kind === 'gemini.batch') {
    const unchecked = geminiBatchRefusal(body)
    if (unchecked) return unchecked
  }
  const validate = method === 'POST' ? validators.get(endpoint.kind) : undefined
  if (validate && !validate(body)) return schemaRefusal(validate.errors ?? [], body)
  const caps = checkCaps(config, endpoint, body)
  if ('status' in caps) return caps
  // A background response runs after its request has been answered: its usage never passes the
  // gateway, so nothing could charge it. Refused unless the operator allows it.
  if (endpoint.kind === 'openai.responses' && body.background === true && !config.allowBackground) {
    return {
      status: 400,
      code: 'GH_RG_UNMETERED',
      message:
        'background: background responses are not available through this gateway (their usage cannot be metered)',
      field: 'background',
      openaiCode: 'invalid_value',
    }
  }
  return boundOutput(config, endpoint, body, caps)
}

/** Every max-token field against the cap of its model: refused, clamped, or taken as it is. */
function checkCaps(
  config: RequestGuardConfig,
  endpoint: Endpoint,
  body: Record<string, unknown>,
): Refusal | CapCheck {
  const clamps: CapEdit[] = []
  let maxTokens: number | undefined
  const sites = findCapSites(body, endpoint)
  const effective = new Map<string, number>()
  for (const site of sites) {
    const field = formatField(site.path)
    const requested = requestedTokens(site.value)
    if (requested === null) continue
    if (requested === 'invalid') {
      return {
        status: 400,
        code: 'GH_RG_INVALID_BODY',
        message: `${field}: must be an integer`,
        field,
        openaiCode: 'invalid_type',
      }
    }
    const cap = capFor(config.providers[endpoint.provider], site.model)
    if (cap !== false && requested > cap) {
      if (config.onOverCap === 'reject') {
        const got = Number.isFinite(requested) ? ` (got ${requested})` : ''
        return {
          status: 400,
          code: 'GH_RG_MAX_TOKENS_EXCEEDED',
          message: `${field}: must be <= ${cap}${got}`,
          field,
          openaiCode: 'integer_above_max_value',
          limit: cap,
        }
      }
      clamps.push({ path: site.path, cap })
      maxTokens = Math.max(maxTokens ?? 0, cap)
      effective.set(pathId(site.path), cap)
    } else {
      maxTokens = Math.max(maxTokens ?? 0, requested)
      effective.set(pathId(site.path), Math.max(0, requested))
    }
  }
  return { sites, clamps, maxTokens, effective }
}

/**
 * Bound each request's output: a missing or null cap gets the configured one written in, and the
 * fields that multiply output (n, best_of, candidateCount) are held to maxChoices.
 */
function boundOutput(
  config: RequestGuardConfig,
  endpoint: Endpoint,
  body: Record<string, unknown>,
  caps: CapCheck,
): Refusal | Checked {
  const { sites, clamps, effective } = caps
  let maxTokens = caps.maxTokens
  const inserts: CapEdit[] = []
  let outputTokens = 0
  for (const unit of outputUnits(body, endpoint)) {
    const within = (path: readonly PathSegment[]): boolean => unit.path.every((seg, i) => path[i] === seg)
    const own = sites.filter((site) => within(site.path) && site.path.length - unit.path.length <= 2)
    let output: number | undefined
    for (const site of own) {
      const v = effective.get(pathId(site.path))
      if (v !== undefined) output = Math.max(output ?? 0, v)
    }
    if (output === undefined) {
      const cap = capFor(config.providers[endpoint.provider], unit.model)
      if (cap !== false && config.insertCaps) {
        const nullSite = own.find((site) => site.value === null)
        inserts.push({
          path: nullSite ? nullSite.path : [...unit.path, ...capInsertPath(unit, endpoint.provider)],
          cap,
        })
        output = cap
        maxTokens = Math.max(maxTokens ?? 0, cap)
      } else output = cap === false ? UNCAPPED_OUTPUT_TOKENS : Math.max(cap, UNCAPPED_OUTPUT_TOKENS)
    }
    let choices = 1
    for (const c of choiceSites(unit)) {
      const path = [...unit.path, ...c.path]
      const field = formatField(path)
      if (c.value === null) continue
      const n = requestedTokens(c.value)
      if (n === 'invalid' || n === null || n < 1) {
        return {
          status: 400,
          code: 'GH_RG_INVALID_BODY',
          message: `${field}: must be a positive integer`,
          field,
          openaiCode: 'invalid_type',
        }
      }
      if (n > config.maxChoices) {
        if (config.onOverCap === 'reject') {
          return {
            status: 400,
            code: 'GH_RG_TOO_MANY_CHOICES',
            message: `${field}: must be <= ${config.maxChoices} (got ${n})`,
            field,
            openaiCode: 'integer_above_max_value',
            limit: config.maxChoices,
          }
        }
        clamps.push({ path, cap: config.maxChoices })
        choices = Math.max(choices, config.maxChoices)
      } else choices = Math.max(choices, n)
    }
    outputTokens += output * choices
  }
  return { clamps, inserts, maxTokens, outputTokens }
}
