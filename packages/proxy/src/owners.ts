/**
 * Which tenant (client key) made each provider object the proxy saw made (see references.ts): the
 * provider keeps them per account, and one tenant's id in another tenant's request would reach the
 * first tenant's data. An id is hard to guess, but it is a secret only until it is logged or shown
 * once; the proxy therefore lets a tenant use only the objects it made.
 */
export interface ObjectOwners {
  /** Remember that `tenant` made object `id`. Never throws; a failure is the store's to report. */
  record(id: string, tenant: string): void
  /** The tenant that made `id`, undefined when unknown. Rejects when the store cannot be read. */
  owner(id: string): Promise<string | undefined> | string | undefined
  /**
   * Record `tenant` for `id` only if nobody is recorded for it yet; true when recorded now. For what
   * may happen once (a batch run on a checked input file). Rejects when the store cannot be written.
   */
  claim(id: string, tenant: string): Promise<boolean> | boolean
}

/** How long the provider keeps a response (OpenAI: 30 days). */
export const OBJECT_TTL_SECONDS = 30 * 24 * 3600

/**
 * Owners in this process: at most `max` objects, the oldest forgotten first, each for
 * OBJECT_TTL_SECONDS. A gateway restarted forgets them: a tenant then cannot continue a response
 * made before (refused as unknown), which is the safe way to be wrong. Cluster mode keeps them in
 * Redis (`redisObjectOwners`).
 */
export function memoryObjectOwners(options: { max?: number; clock?: () => number } = {}): ObjectOwners {
  const max = options.max ?? 100_000
  const clock = options.clock ?? Date.now
  // Insertion order is age order: the first key is the oldest.
  const owners = new Map<string, { tenant: string; until: number }>()
  const record = (id: string, tenant: string): void => {
    owners.delete(id)
    owners.set(id, { tenant, until: clock() + OBJECT_TTL_SECONDS * 1000 })
    if (owners.size > max) owners.delete(owners.keys().next().value!)
  }
  const owner = (id: string): string | undefined => {
    const o = owners.get(id)
    if (!o) return undefined
    if (o.until <= clock()) {
      owners.delete(id)
      return undefined
    }
    return o.tenant
  }
  return {
    record,
    owner,
    claim(id, tenant) {
      if (owner(id) !== undefined) return false
      record(id, tenant)
      return true
    },
  }
}

/** The commands the Redis owners need of a client (an ioredis client fits). */
export interface ObjectOwnersRedisClient {
  get(key: string): Promise<string | null>
  set(key: string, value: string, ex: 'EX', seconds: number): Promise<unknown>
  /** Set only if absent: 'OK' when set, null when the key was there. */
  set(key: string, value: string, ex: 'EX', seconds: number, nx: 'NX'): Promise<unknown>
}

/**
 * Owners in Redis (`<prefix>owner:<id>`, expiring with the object), shared by every gateway of a
 * cluster: a response made through one is continued through any, by its tenant only. A write that
 * fails goes to `onError` (the object then counts as unknown: refused, never given away).
 */
export function redisObjectOwners(client: ObjectOwnersRedisClient, prefix: string, onError: (err: unknown) => void = () => undefined): ObjectOwners {
  const key = (id: string): string => `${prefix}owner:${id}`
  return {
    record(id, tenant) {
      client.set(key(id), tenant, 'EX', OBJECT_TTL_SECONDS).catch(onError)
    },
    async owner(id) {
      return (await client.get(key(id))) ?? undefined
    },
    async claim(id, tenant) {
      return (await client.set(key(id), tenant, 'EX', OBJECT_TTL_SECONDS, 'NX')) === 'OK'
    },
  }
}
