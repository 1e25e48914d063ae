import { createHash } from 'node:crypto'
import { bodyObject, isObject, spliced } from './json-body'

/**
 * What the proxy binds to the tenant (the authenticated client key) before a request leaves: every
 * tenant of a gateway shares the provider account, and the provider keys some things per account.
 *
 * - `Idempotency-Key` (headers.ts): kept per account, so one tenant's key could match another's.
 * - End-user identifiers (here): the providers act on abuse per end-user identifier when a request
 *   names one, and against the whole account when it does not. OpenAI blocks an organization that
 *   keeps crossing its safety thresholds unless `safety_identifier` lets it block one end user
 *   instead; Anthropic reads `metadata.user_id` the same way. So each request carries an
 *   identifier of its tenant's own: what the client named, bound to its key, or the key alone.
 *   One tenant's abuse then falls on that tenant, never on the account every other tenant uses,
 *   and no tenant can name another tenant's end users to get them blocked.
 * - OpenAI's `prompt_cache_key` (here): the prompt cache is the account's, and a reply's
 *   `cached_tokens` tells whether a prefix was seen recently, by anyone. The provider routes a
 *   request to a cache by its prefix and this key, so a key of the tenant's own makes a hit on
 *   another tenant's prefix unlikely (routing, not a partition: not impossible), and no tenant can
 *   aim at another's cache by sending its key.
 */

/** A client-chosen value as the provider sees it: bound to the client key that sent it (46 characters). */
export function tenantScoped(tenant: string, value: string): string {
  return `gh-${createHash('sha256').update(tenant).update('\0').update(value).digest('base64url')}`
}

/** One field of a body that the provider keys per account: bound to the tenant. */
interface BoundField {
  /** Where it goes: a top-level member, or `metadata.user_id`. */
  readonly field: 'safety_identifier' | 'user' | 'prompt_cache_key' | 'metadata.user_id'
  /** The members whose string value names it, first found first (the field itself, then older names). */
  readonly from: readonly string[]
  /** Added with the tenant's own value when the body names none. */
  readonly insert: boolean
}

const OPENAI_MODEL_CALL: readonly BoundField[] = [
  { field: 'safety_identifier', from: ['safety_identifier', 'user'], insert: true },
  { field: 'user', from: ['user'], insert: false },
  { field: 'prompt_cache_key', from: ['prompt_cache_key'], insert: true },
]

/** The endpoints whose bodies hold such fields (provider registry ids). */
const RULES: ReadonlyMap<string, readonly BoundField[]> = new Map([
  ['openai.chat', OPENAI_MODEL_CALL],
  ['openai.responses', OPENAI_MODEL_CALL],
  ['openai.images', [OPENAI_MODEL_CALL[0]!, OPENAI_MODEL_CALL[1]!]],
  ['openai.completions', [OPENAI_MODEL_CALL[1]!]],
  ['openai.embeddings', [OPENAI_MODEL_CALL[1]!]],
  ['claude.messages', [{ field: 'metadata.user_id', from: ['metadata.user_id'], insert: true }]],
])

/** A member's value, `metadata.user_id` included; undefined unless a string. */
function named(o: Record<string, unknown>, path: string): string | undefined {
  const v = path === 'metadata.user_id' ? (isObject(o.metadata) ? o.metadata.user_id : undefined) : o[path]
  return typeof v === 'string' ? v : undefined
}

/** The top-level member each field lives in. */
const memberOf = (field: BoundField['field']): string => (field === 'metadata.user_id' ? 'metadata' : field)

/** `obj` with the fields bound to `tenant`: what it named, bound, and the tenant's own where it named none. */
function bound(obj: Record<string, unknown>, fields: readonly BoundField[], values: ReadonlyArray<string | undefined>, tenant: string): Record<string, unknown> {
  const next: Record<string, unknown> = { ...obj }
  fields.forEach((f, i) => {
    const value = values[i]
    if (value === undefined && !f.insert) return
    const scoped = tenantScoped(tenant, value ?? '')
    if (f.field === 'metadata.user_id') next.metadata = { ...(isObject(obj.metadata) ? obj.metadata : {}), user_id: scoped }
    else next[f.field] = scoped
  })
  return next
}

const valuesOf = (obj: Record<string, unknown>, fields: readonly BoundField[]): Array<string | undefined> =>
  fields.map((f) => f.from.map((path) => named(obj, path)).find((v) => v !== undefined))

/**
 * The body of a request with the fields above bound to its tenant, from a binder made once per proxy
 * (it keeps, per tenant and endpoint, the members a body naming none gets; bounded).
 */
export type TenantBinder = (endpoint: string | undefined, parsed: unknown, body: Buffer, tenant: string) => Buffer | undefined

/**
 * A binder (see TenantBinder). It returns undefined when nothing is to change (an endpoint without
 * such fields, a body that is not a JSON object, nothing named and nothing to add). `parsed` is the
 * body as an object when a layer before parsed it. A body that names none of them gets its tenant's
 * own added before its closing brace, every other byte as sent; one that names one is serialised
 * again with the bound values. A message batch (`claude.batches.create`) has each of its requests'
 * `params` bound as a message is.
 */
export function tenantBinder(): TenantBinder {
  const defaults = new Map<string, Buffer>()
  const defaultMembers = (endpoint: string, fields: readonly BoundField[], tenant: string): Buffer => {
    const cacheKey = `${endpoint}\0${tenant}`
    let members = defaults.get(cacheKey)
    if (members === undefined) {
      const id = JSON.stringify(tenantScoped(tenant, ''))
      const parts = fields.filter((f) => f.insert).map((f) => (f.field === 'metadata.user_id' ? `"metadata":{"user_id":${id}}` : `"${f.field}":${id}`))
      members = Buffer.from(parts.join(','))
      // Bounded: a gateway's keys are few, but nothing here may grow without limit.
      if (defaults.size >= 10_000) defaults.clear()
      defaults.set(cacheKey, members)
    }
    return members
  }
  return (endpoint, parsed, body, tenant) => {
    if (endpoint === 'claude.batches.create') return batchBound(parsed, body, tenant)
    const fields = endpoint === undefined ? undefined : RULES.get(endpoint)
    if (!fields) return undefined
    const obj = bodyObject(parsed, body)
    if (!obj) return undefined
    const values = valuesOf(obj, fields)
    if (values.every((v) => v === undefined)) {
      if (!fields.some((f) => f.insert)) return undefined
      // Nothing named, and no member of that name in the body in any form: added as they are.
      const free = fields.every((f) => !f.insert || (obj[memberOf(f.field)] === undefined && body.indexOf(`"${memberOf(f.field)}"`) === -1))
      if (free) return spliced(body, defaultMembers(endpoint!, fields, tenant))
    }
    return Buffer.from(JSON.stringify(bound(obj, fields, values, tenant)), 'utf8')
  }
}

/** A message batch with each request's `params` bound as a message is; undefined when it holds no requests. */
function batchBound(parsed: unknown, body: Buffer, tenant: string): Buffer | undefined {
  const obj = bodyObject(parsed, body)
  if (!obj || !Array.isArray(obj.requests)) return undefined
  const fields = RULES.get('claude.messages')!
  const requests = obj.requests.map((r: unknown) => (isObject(r) && isObject(r.params) ? { ...r, params: bound(r.params, fields, valuesOf(r.params, fields), tenant) } : r))
  return Buffer.from(JSON.stringify({ ...obj, requests }), 'utf8')
}
