import { ENDPOINT_IDS, GatehouseConfigError, GatehouseError, KEY_LIMIT_NAMES, isCidr, isProviderName, isProviderObjectId, PROVIDER_NAMES, PROVIDER_OBJECT_ID_FORMAT, suggest, type KeyLimitScope } from '@gatehouse/core'
import { ClientAuthErrorCodes } from './errors'
import type { ClientKeyRecord } from './store'

export interface CreateKeyInput {
  name: string
  /** Non-empty when given: an empty scope is refused, never read as "everything". */
  providers?: string[]
  /** Endpoint ids (provider registry); non-empty when given, each of one of `providers`. */
  endpoints?: string[]
  /** Models or `*` patterns; non-empty when given. */
  models?: string[]
  /** Positive whole numbers; provider entries only for providers the key may call. */
  limits?: KeyLimitScope
  /** CIDRs or addresses the key is valid from; non-empty when given. */
  networks?: string[]
  /** Provider object ids the key may refer to besides those it made (at most MAX_KEY_OBJECTS); non-empty when given. */
  objects?: string[]
  expiresAt?: Date
}

/** The most provider objects one key's scope may name. */
export const MAX_KEY_OBJECTS = 256

/**
 * Check a key's scope before it is stored. Throws GH_AUTH_INVALID_SCOPE (400) naming the field
 * and the value at fault (scopes hold no secret).
 */
export function validateKeyScope(input: { providers?: unknown; endpoints?: unknown; models?: unknown; limits?: unknown; networks?: unknown; objects?: unknown }): void {
  const bad = (message: string): never => {
    throw new GatehouseError(ClientAuthErrorCodes.GH_AUTH_INVALID_SCOPE, `@gatehouse/client-auth: ${message}`, 400)
  }
  const list = (field: string, value: unknown): string[] | undefined => {
    if (value === undefined) return undefined
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) bad(`${field} must be a list of names`)
    if ((value as string[]).length === 0) bad(`${field} must not be empty: an empty scope would be read as everything or nothing; leave it out for the defaults`)
    return value as string[]
  }
  const providers = list('providers', input.providers)
  for (const p of providers ?? []) {
    if (!isProviderName(p)) {
      const hint = suggest(p, PROVIDER_NAMES)
      bad(`providers: unknown provider ${JSON.stringify(p)}${hint ? ` (did you mean ${JSON.stringify(hint)}?)` : ''} (${PROVIDER_NAMES.join(', ')})`)
    }
  }
  for (const id of list('endpoints', input.endpoints) ?? []) {
    if (!ENDPOINT_IDS.includes(id)) {
      const hint = suggest(id, ENDPOINT_IDS)
      bad(`endpoints: unknown endpoint ${JSON.stringify(id)}${hint ? ` (did you mean ${JSON.stringify(hint)}?)` : ''}`)
    }
    const provider = id.slice(0, id.indexOf('.'))
    if (providers && !providers.includes(provider)) bad(`endpoints: ${JSON.stringify(id)} is an endpoint of ${provider}, which providers does not include`)
  }
  for (const net of list('networks', input.networks) ?? []) {
    if (!isCidr(net)) bad(`networks: ${JSON.stringify(net.slice(0, 60))} is not a CIDR or an address (10.0.0.0/8, 2001:db8::/32, 203.0.113.7)`)
  }
  const objects = list('objects', input.objects) ?? []
  if (objects.length > MAX_KEY_OBJECTS) bad(`objects: at most ${MAX_KEY_OBJECTS} ids (got ${objects.length})`)
  for (const id of objects) {
    if (!isProviderObjectId(id)) bad(`objects: ${JSON.stringify(id.slice(0, 80))} is not a provider object id (${PROVIDER_OBJECT_ID_FORMAT})`)
  }
  for (const model of list('models', input.models) ?? []) {
    if (!MODEL_PATTERN.test(model)) bad(`models: ${JSON.stringify(model.slice(0, 80))} is not a model name or pattern (letters, digits, . _ - : / @ and *, up to 200)`)
  }
  if (input.limits === undefined) return
  const whole = (field: string, value: unknown): void => {
    if (!Number.isSafeInteger(value) || (value as number) < 1) bad(`${field} must be a whole number of at least 1 (got ${JSON.stringify(value)})`)
  }
  const limitsOf = (field: string, value: unknown, nested: boolean): void => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) bad(`${field} must be an object of limits`)
    for (const [name, v] of Object.entries(value as Record<string, unknown>)) {
      if (nested && name === 'providers') {
        if (v === null || typeof v !== 'object' || Array.isArray(v)) bad(`${field}.providers must map provider names to limits`)
        for (const [p, pl] of Object.entries(v as Record<string, unknown>)) {
          if (!isProviderName(p)) bad(`${field}.providers: unknown provider ${JSON.stringify(p)} (${PROVIDER_NAMES.join(', ')})`)
          if (providers && !providers.includes(p)) bad(`${field}.providers.${p}: the key may not call ${p} (providers)`)
          limitsOf(`${field}.providers.${p}`, pl, false)
        }
        continue
      }
      if (!(KEY_LIMIT_NAMES as readonly string[]).includes(name)) {
        const hint = suggest(name, KEY_LIMIT_NAMES)
        bad(`${field}: unknown limit ${JSON.stringify(name)}${hint ? ` (did you mean ${JSON.stringify(hint)}?)` : ''} (${KEY_LIMIT_NAMES.join(', ')})`)
      }
      whole(`${field}.${name}`, v)
    }
  }
  limitsOf('limits', input.limits, true)
}

/** A model name as providers spell them (`gpt-4o-mini`, `models/gemini-2.0-flash`, `claude-sonnet-4@20250514`), `*` for any run. */
const MODEL_PATTERN = /^[A-Za-z0-9._:/@*-]{1,200}$/

/** A stored record as read back (a file edited by hand, a shared store): GH_AUTH_KEYFILE_CORRUPT naming the fault. */
export function checkStoredRecord(r: ClientKeyRecord, where: string): void {
  if (typeof r?.hash !== 'string' || !/^[0-9a-f]{64}$/.test(r.hash) || typeof r.id !== 'string') {
    throw new GatehouseConfigError('GH_AUTH_KEYFILE_CORRUPT', `@gatehouse/client-auth: ${where} has a malformed entry`)
  }
  // A scope edited by hand is checked as one given to create(): a limit that is not a number must
  // not read as "no limit".
  try {
    validateKeyScope(r)
  } catch (e) {
    throw new GatehouseConfigError('GH_AUTH_KEYFILE_CORRUPT', `@gatehouse/client-auth: ${where}: key ${r.id}: ${(e as Error).message.replace('@gatehouse/client-auth: ', '')}`)
  }
}
