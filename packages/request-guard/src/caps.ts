import { GEMINI_BATCH_INPUT_KEYS, geminiBatchRequests } from '@gatehouse/core'
import type { ProviderCaps } from './options'
import type { Endpoint } from './endpoints'
import type { PathSegment } from './scan'
import type { Refusal } from './refusal'

/** Every key that can carry a max-token value, at any of the places listed in `findCapSites`. */
export const CAP_KEYS: ReadonlySet<string> = new Set([
  'max_tokens',
  'max_completion_tokens',
  'max_output_tokens',
  'maxOutputTokens',
])

const TOP_LEVEL_KEYS = ['max_tokens', 'max_completion_tokens', 'max_output_tokens'] as const
/** Gemini accepts proto3 JSON: camelCase and snake_case both reach the same field. */
const GEMINI_CONFIG_KEYS = ['generationConfig', 'generation_config'] as const
const GEMINI_MAX_KEYS = ['maxOutputTokens', 'max_output_tokens'] as const

/** One max-token field in a body. */
export interface CapSite {
  path: PathSegment[]
  value: unknown
  /** The model it applies to, when the body or path names one. */
  model: string | undefined
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v)
const own = (o: Record<string, unknown>, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k)
const modelOf = (o: Record<string, unknown>): string | undefined =>
  typeof o.model === 'string' ? o.model : undefined

function sitesIn(
  obj: Record<string, unknown>,
  prefix: PathSegment[],
  model: string | undefined,
  out: CapSite[],
): void {
  for (const key of TOP_LEVEL_KEYS)
    if (own(obj, key)) out.push({ path: [...prefix, key], value: obj[key], model })
  for (const cfgKey of GEMINI_CONFIG_KEYS) {
    const cfg = obj[cfgKey]
    if (!own(obj, cfgKey) || !isObject(cfg)) continue
    for (const key of GEMINI_MAX_KEYS)
      if (own(cfg, key)) out.push({ path: [...prefix, cfgKey, key], value: cfg[key], model })
  }
}

/**
 * The max-token fields of a body: `max_tokens`, `max_completion_tokens`, `max_output_tokens` at the
 * top level, `generationConfig.maxOutputTokens` (either spelling), and those of every nested request
 * of a batch (Anthropic's `requests[i].params`, Gemini's inline `requests[i].request`).
 */
export function findCapSites(body: Record<string, unknown>, endpoint: Endpoint): CapSite[] {
  const out: CapSite[] = []
  sitesIn(body, [], endpoint.pathModel ?? modelOf(body), out)
  for (const unit of nestedUnits(body, endpoint) ?? []) sitesIn(unit.obj, unit.path, unit.model, out)
  return out
}

/**
 * Why a Gemini batch cannot be checked, if it cannot: its requests must be inline, under one
 * spelling of the input config (a batch read from a file would run requests nobody capped).
 */
export function geminiBatchRefusal(body: Record<string, unknown>): Refusal | undefined {
  const batch = body.batch
  if (!isObject(batch)) return undefined // the schema names it
  const present = GEMINI_BATCH_INPUT_KEYS.filter((k) => own(batch, k))
  if (present.length !== 1) {
    const message = present.length === 0 ? 'batch.input_config: is required' : 'batch: set input_config or inputConfig, not both'
    return { status: 400, code: 'GH_RG_INVALID_BODY', message, field: 'batch.input_config', openaiCode: 'invalid_value' }
  }
  const cfg = batch[present[0]!]
  if (isObject(cfg) && (own(cfg, 'file_name') || own(cfg, 'fileName'))) {
    const field = `batch.${present[0]!}.file_name`
    return { status: 400, code: 'GH_RG_INVALID_BODY', message: `${field}: a batch read from a file cannot be checked by this gateway; send its requests inline`, field, openaiCode: 'invalid_value' }
  }
  return undefined
}

/** The requests nested in a batch body, each checked as the request it is; undefined for other bodies. */
function nestedUnits(body: Record<string, unknown>, endpoint: Endpoint): OutputUnit[] | undefined {
  const out: OutputUnit[] = []
  if (endpoint.kind === 'claude.batches') {
    if (Array.isArray(body.requests)) {
      body.requests.forEach((entry: unknown, i) => {
        if (isObject(entry) && isObject(entry.params)) out.push({ path: ['requests', i, 'params'], obj: entry.params, kind: 'claude.messages', model: modelOf(entry.params) })
      })
    }
    return out
  }
  if (endpoint.kind === 'gemini.batch') {
    return geminiBatchRequests(body).map(({ path, request }) => ({ path, obj: request, kind: 'gemini.generate', model: endpoint.pathModel }))
  }
  return undefined
}

/** The cap for a model: an exact name first, then the longest matching pattern, then the provider's. */
export function capFor(caps: ProviderCaps, model: string | undefined): number | false {
  if (model !== undefined) {
    const lower = model.toLowerCase()
    const exact = caps.models.find((m) => m.exact && m.pattern.toLowerCase() === lower)
    if (exact) return exact.cap
    let best: { length: number; cap: number | false } | undefined
    for (const m of caps.models) {
      if (!m.exact && m.regex.test(model) && (!best || m.pattern.length > best.length)) {
        best = { length: m.pattern.length, cap: m.cap }
      }
    }
    if (best) return best.cap
  }
  return caps.maxTokens
}

/**
 * The number a max-token value asks for. Numbers count as they are; strings of digits count too,
 * because Gemini's proto3 JSON accepts integers as strings. `null` means "not set". Anything else
 * is not a valid value (`invalid`).
 */
export function requestedTokens(value: unknown): number | null | 'invalid' {
  if (value === null) return null
  if (typeof value === 'number') return Number.isInteger(value) ? value : 'invalid'
  if (typeof value === 'string' && /^\s*-?\d+\s*$/.test(value)) return Number(value)
  return 'invalid'
}

/** Output assumed for a request whose cap is off and which sets none. */
export const UNCAPPED_OUTPUT_TOKENS = 4096

/** One request whose output the guard bounds: the body itself, or a nested batch entry. */
export interface OutputUnit {
  /** Where the request object sits in the body (`[]` for the body itself). */
  path: PathSegment[]
  obj: Record<string, unknown>
  /** The schema it follows (a nested Anthropic batch entry is a `claude.messages` request). */
  kind: Endpoint['kind']
  model: string | undefined
}

/** The requests of a body that produce output (none for embeddings, token counts, unknown bodies). */
export function outputUnits(body: Record<string, unknown>, endpoint: Endpoint): OutputUnit[] {
  switch (endpoint.kind) {
    case 'openai.chat':
    case 'openai.completions':
    case 'openai.responses':
    case 'claude.messages':
    case 'gemini.generate':
      return [{ path: [], obj: body, kind: endpoint.kind, model: endpoint.pathModel ?? modelOf(body) }]
    default:
      return nestedUnits(body, endpoint) ?? []
  }
}

/**
 * Where a cap is written into a request that sets none: the field the endpoint reads. OpenAI chat
 * gets `max_completion_tokens` (its reasoning models refuse `max_tokens`), Gemini's OpenAI
 * endpoint `max_tokens`; a Gemini body its `generationConfig` (in the spelling the client used).
 */
export function capInsertPath(unit: OutputUnit, provider: string): PathSegment[] {
  switch (unit.kind) {
    case 'openai.chat':
      return [provider === 'gemini' ? 'max_tokens' : 'max_completion_tokens']
    case 'openai.responses':
      return ['max_output_tokens']
    case 'gemini.generate':
      return own(unit.obj, 'generation_config') && isObject(unit.obj.generation_config)
        ? ['generation_config', 'max_output_tokens']
        : ['generationConfig', 'maxOutputTokens']
    default:
      return ['max_tokens']
  }
}

/** The fields of a request that multiply its output: `n` and `best_of`, Gemini's `candidateCount`. */
export function choiceSites(unit: OutputUnit): { path: PathSegment[]; value: unknown }[] {
  const out: { path: PathSegment[]; value: unknown }[] = []
  if (unit.kind === 'openai.chat' || unit.kind === 'openai.completions') {
    for (const key of unit.kind === 'openai.completions' ? ['n', 'best_of'] : ['n']) {
      if (own(unit.obj, key)) out.push({ path: [key], value: unit.obj[key] })
    }
  }
  if (unit.kind === 'gemini.generate') {
    for (const cfgKey of GEMINI_CONFIG_KEYS) {
      const cfg = unit.obj[cfgKey]
      if (!own(unit.obj, cfgKey) || !isObject(cfg)) continue
      for (const key of ['candidateCount', 'candidate_count']) if (own(cfg, key)) out.push({ path: [cfgKey, key], value: cfg[key] })
    }
  }
  return out
}
