import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose'
import { createOptionsResolver, GatehouseConfigError, isLoopback, type KeyLimitScope } from '@gatehouse/core'
import { ClientAuthErrorCodes } from './errors'
import { validateKeyScope } from './scope'

/** Client identities from the company's identity provider: JWTs verified against its keys. */
export interface JwtAuthOptions {
  /** The token issuer (`iss`); its `/.well-known/openid-configuration` names the keys unless `jwksUri` does. */
  issuer: string
  /** Accepted `aud` values. */
  audience: string | string[]
  /** The JSON Web Key Set. @default discovered from the issuer */
  jwksUri?: string
  /** Accepted signature algorithms: asymmetric only (never `none`, never HMAC). @default RS256, PS256, ES256, EdDSA */
  algorithms?: string[]
  /**
   * Claims holding the identity's scope: lists, as a key's `providers`, `endpoints`, `models`,
   * `objects`; and
   * `limits`, an object as a key's own limits (`{ requests_per_minute, tokens_per_minute,
   * monthly_tokens, concurrency, providers: { name: {…} } }`).
   */
  scopeClaims?: { providers?: string; endpoints?: string; models?: string; objects?: string; limits?: string }
  /** Seconds of clock skew allowed on `exp` and `nbf`. @default 30 */
  clockTolerance?: number
  /** Least seconds between two fetches of the key set (a token naming an unknown key refetches it). @default 30 */
  jwksCooldown?: number
}

const ASYMMETRIC = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'])

/** What a verified token says about its holder. */
export interface JwtIdentity {
  subject: string
  issuer: string
  providers?: string[]
  endpoints?: string[]
  models?: string[]
  objects?: string[]
  limits?: KeyLimitScope
}

const text = { type: 'string', minLength: 1 } as const

/** JSON schema of the `jwt` option (the server composes its `auth.jwt` keys from it); URLs and algorithms are checked by hand. */
export const jwtAuthOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['issuer', 'audience'],
  properties: {
    issuer: text,
    audience: { anyOf: [text, { type: 'array', items: text, minItems: 1 }] },
    jwksUri: text,
    algorithms: { type: 'array', items: text, minItems: 1 },
    scopeClaims: { type: 'object', additionalProperties: false, properties: { providers: text, endpoints: text, models: text, objects: text, limits: text } },
    clockTolerance: { type: 'integer', minimum: 0, maximum: 300 },
    jwksCooldown: { type: 'integer', minimum: 1, maximum: 3600 },
  },
} as const

const resolveJwtOptions = createOptionsResolver<JwtAuthOptions>({ pkg: '@gatehouse/client-auth: jwt', codePrefix: 'GH_AUTH', schema: jwtAuthOptionsSchema })

const invalid = (message: string): GatehouseConfigError => new GatehouseConfigError(ClientAuthErrorCodes.GH_AUTH_INVALID_OPTIONS, `@gatehouse/client-auth: ${message}`)

/** https, or http to loopback (a test's or a sidecar's identity provider). */
function checkUrl(name: string, value: string): URL {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw invalid(`${name} must be a URL`)
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && (url.hostname === 'localhost' || isLoopback(url.hostname)))) {
    throw invalid(`${name} must be https (http only to loopback)`)
  }
  if (url.username || url.password) throw invalid(`${name} must not carry credentials`)
  return url
}

/**
 * A verifier for `options`: resolves the identity, or rejects with a reason safe to put in events
 * (the jose error code, never the token). Keys come from the issuer's JWKS, fetched on first use,
 * cached, and fetched again when a token names a key the cache does not hold (rotation), at most
 * once per `jwksCooldown` so that unknown `kid`s cannot make it hammer the issuer.
 */
export function jwtVerifier(options: JwtAuthOptions): (token: string) => Promise<JwtIdentity> {
  if (options === null || typeof options !== 'object') throw invalid('jwt must be an object')
  resolveJwtOptions(options)
  checkUrl('jwt.issuer', options.issuer)
  const audience = Array.isArray(options.audience) ? options.audience : [options.audience]
  const algorithms = options.algorithms ?? ['RS256', 'PS256', 'ES256', 'EdDSA']
  for (const alg of algorithms) if (!ASYMMETRIC.has(alg)) throw invalid(`jwt.algorithms: ${JSON.stringify(alg)} is not an asymmetric signature algorithm (${[...ASYMMETRIC].join(', ')})`)
  const clockTolerance = options.clockTolerance ?? 30
  if (options.jwksUri !== undefined) checkUrl('jwt.jwksUri', options.jwksUri)
  const cooldown = options.jwksCooldown ?? 30

  let keys: ReturnType<typeof createRemoteJWKSet> | undefined
  let discovering: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined
  const keySet = (): Promise<ReturnType<typeof createRemoteJWKSet>> => {
    if (keys) return Promise.resolve(keys)
    const remote = (url: string): ReturnType<typeof createRemoteJWKSet> =>
      createRemoteJWKSet(checkUrl('jwks_uri', url), { cooldownDuration: cooldown * 1000, cacheMaxAge: 600_000, timeoutDuration: 5000 })
    if (options.jwksUri) return Promise.resolve((keys = remote(options.jwksUri)))
    discovering ??= (async () => {
      const res = await fetch(new URL('.well-known/openid-configuration', options.issuer.endsWith('/') ? options.issuer : `${options.issuer}/`), { redirect: 'error', signal: AbortSignal.timeout(5000) })
      if (!res.ok) throw Object.assign(new Error('discovery failed'), { code: 'ERR_DISCOVERY' })
      const doc = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown }
      if (doc.issuer !== options.issuer || typeof doc.jwks_uri !== 'string') throw Object.assign(new Error('discovery document does not match'), { code: 'ERR_DISCOVERY' })
      return (keys = remote(doc.jwks_uri))
    })().finally(() => (discovering = undefined))
    return discovering
  }

  const list = (payload: JWTPayload, claim: string | undefined): string[] | undefined => {
    if (!claim) return undefined
    const v = payload[claim]
    if (v === undefined) return undefined
    return Array.isArray(v) ? (v as string[]) : typeof v === 'string' ? v.split(/[\s,]+/).filter(Boolean) : ([] as string[])
  }

  return async (token) => {
    const { payload } = await jwtVerify(token, await keySet(), { issuer: options.issuer, audience, algorithms, clockTolerance, requiredClaims: ['sub', 'exp'] })
    const subject = payload.sub!
    if (typeof subject !== 'string' || !/^[\x21-\x7e]{1,200}$/.test(subject)) throw Object.assign(new Error('bad subject'), { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED' })
    const identity: JwtIdentity = { subject, issuer: options.issuer }
    const providers = list(payload, options.scopeClaims?.providers)
    const endpoints = list(payload, options.scopeClaims?.endpoints)
    const models = list(payload, options.scopeClaims?.models)
    const objects = list(payload, options.scopeClaims?.objects)
    const limits = options.scopeClaims?.limits ? (payload[options.scopeClaims.limits] as KeyLimitScope | undefined) : undefined
    // The scope claims are checked as a key's scope is: an empty, unknown or malformed one refuses the token.
    validateKeyScope({ providers, endpoints, models, objects, ...(limits !== undefined ? { limits } : {}) })
    if (providers) identity.providers = providers
    if (endpoints) identity.endpoints = endpoints
    if (models) identity.models = models
    if (objects) identity.objects = objects
    if (limits !== undefined) identity.limits = structuredClone(limits)
    return identity
  }
}

/** The reason to record for a refused token: jose's code, or a short word; never the token. */
export function jwtFailureReason(err: unknown): string {
  if (err instanceof joseErrors.JOSEError) return err.code
  const code = (err as { code?: unknown })?.code
  return typeof code === 'string' && /^[A-Z_]{3,60}$/.test(code) ? code : 'ERR_JWT_INVALID'
}

/** Three base64url segments, the first a JSON object: a JWT rather than a Gatehouse key. */
export const looksLikeJwt = (token: string): boolean => /^eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*$/.test(token) && token.length <= 16_384
