import { createHash } from 'node:crypto'
import { spliced } from './body-splice'

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
 */

/** A client-chosen value as the provider sees it: bound to the client key that sent it (46 characters). */
export function tenantScoped(tenant: string, value: string): string {
  return `gh-${createHash('sha256').update(tenant).update('\0').update(value).digest('base64url')}`
}

interface EndUserRule {
  /** Where the end user's identifier goes, when the body names none. */
  readonly insert: 'safety_identifier' | 'metadata.user_id' | undefined
  /** OpenAI's older `user` field: bound to the tenant when the client sends it. */
  readonly user: boolean
}

/** The endpoints whose bodies name an end user (provider registry ids). */
const RULES: ReadonlyMap<string, EndUserRule> = new Map([
  ['openai.chat', { insert: 'safety_identifier', user: true }],
  ['openai.responses', { insert: 'safety_identifier', user: true }],
  ['openai.images', { insert: 'safety_identifier', user: true }],
  ['openai.completions', { insert: undefined, user: true }],
  ['openai.embeddings', { insert: undefined, user: true }],
  ['claude.messages', { insert: 'metadata.user_id', user: false }],
])

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v)

/** The member each tenant's requests get when they name no end user, made once per tenant. */
const defaults = new Map<string, Buffer>()

function defaultMember(rule: EndUserRule, tenant: string): Buffer {
  const cacheKey = `${rule.insert ?? ''}\0${tenant}`
  let member = defaults.get(cacheKey)
  if (member === undefined) {
    const id = JSON.stringify(tenantScoped(tenant, ''))
    member = Buffer.from(rule.insert === 'safety_identifier' ? `"safety_identifier":${id}` : `"metadata":{"user_id":${id}}`)
    // Bounded: a gateway's keys are few, but nothing here may grow without limit.
    if (defaults.size >= 10_000) defaults.clear()
    defaults.set(cacheKey, member)
  }
  return member
}

/**
 * The body of a request to `endpoint` with its end-user identifiers bound to `tenant` (see above);
 * undefined when nothing is to change (an endpoint without end users, a body that is not a JSON
 * object). `parsed` is the body as an object when a layer before parsed it. A body that names no end
 * user gets its tenant's identifier added before its closing brace, every other byte as sent; one
 * that names one is serialised again with the bound value.
 */
export function withTenantEndUser(endpoint: string | undefined, parsed: unknown, body: Buffer, tenant: string): Buffer | undefined {
  const rule = endpoint === undefined ? undefined : RULES.get(endpoint)
  if (!rule) return undefined
  let o: unknown = parsed
  if (!isObject(o)) {
    try {
      o = JSON.parse(body.toString('utf8'))
    } catch {
      return undefined
    }
    if (!isObject(o)) return undefined
  }
  const user = rule.user && typeof o.user === 'string' ? o.user : undefined
  if (rule.insert === 'metadata.user_id') {
    const metadata = o.metadata
    if (metadata === undefined && body.indexOf('"metadata"') === -1) return spliced(body, defaultMember(rule, tenant))
    const own = isObject(metadata) && typeof metadata.user_id === 'string' ? metadata.user_id : ''
    const next = { ...o, metadata: { ...(isObject(metadata) ? metadata : {}), user_id: tenantScoped(tenant, own) } }
    return Buffer.from(JSON.stringify(next), 'utf8')
  }
  const named = typeof o.safety_identifier === 'string' ? o.safety_identifier : undefined
  if (named === undefined && user === undefined) {
    if (rule.insert === undefined) return undefined
    if (o.safety_identifier === undefined && body.indexOf('"safety_identifier"') === -1) return spliced(body, defaultMember(rule, tenant))
  }
  const next: Record<string, unknown> = { ...o }
  if (user !== undefined) next.user = tenantScoped(tenant, user)
  if (rule.insert !== undefined || named !== undefined) next.safety_identifier = tenantScoped(tenant, named ?? user ?? '')
  return Buffer.from(JSON.stringify(next), 'utf8')
}
