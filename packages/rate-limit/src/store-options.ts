import { createOptionsResolver, GatehouseConfigError, isLogger, noopLogger, type Logger } from '@gatehouse/core'
import type { Redis } from 'ioredis'
import { describe, invalid } from './limit-config'
import type { MemoryStoreOptions } from './memory-store'
import type { QuotaCountersConfig } from './memory-quotas'
import { PKG, type SchemaObject } from './options'

const memorySchema: SchemaObject = {
  type: 'object',
  additionalProperties: false,
  properties: {
    maxKeys: { type: 'integer', minimum: 1 },
    quotaFile: { type: 'string', minLength: 1 },
    quotaFlushMs: { type: 'integer', minimum: 0 },
    quotaFileKey: {},
    logger: {},
    onEvent: {},
    clock: {},
  },
}
const parseMemory = createOptionsResolver<MemoryStoreOptions>({
  pkg: `${PKG} memoryStore`,
  codePrefix: 'GH_RL',
  schema: memorySchema,
  handChecked: ['quotaFileKey', 'logger', 'onEvent', 'clock'],
  secretKeys: ['quotaFileKey'],
})

/** Shortest quota file key: the HMAC-SHA256 block's worth of strength. */
const MIN_KEY_BYTES = 32

/** The quota file key as bytes; its value is never quoted in an error. */
function quotaFileKeyOf(o: MemoryStoreOptions): Uint8Array | undefined {
  const key = o.quotaFileKey
  if (key === undefined) return undefined
  if (typeof key !== 'string' && !(key instanceof Uint8Array))
    throw invalid('memoryStore quotaFileKey must be a string or a Buffer')
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : Buffer.from(key)
  if (bytes.length < MIN_KEY_BYTES)
    throw invalid(`memoryStore quotaFileKey must be at least ${MIN_KEY_BYTES} bytes (got ${bytes.length})`)
  if (o.quotaFile === undefined) throw invalid('memoryStore quotaFileKey needs quotaFile')
  return bytes
}

export function resolveMemoryStoreOptions(options: unknown): QuotaCountersConfig & { maxKeys: number } {
  const o = parseMemory(options)
  if (o.logger !== undefined && !isLogger(o.logger))
    throw invalid(`memoryStore logger must have error, warn, info and debug methods`)
  if (o.onEvent !== undefined && typeof o.onEvent !== 'function')
    throw invalid(`memoryStore onEvent must be a function (got ${describe(o.onEvent)})`)
  if (o.clock !== undefined && typeof o.clock !== 'function')
    throw invalid(`memoryStore clock must be a function (got ${describe(o.clock)})`)
  return {
    maxKeys: o.maxKeys ?? 10_000,
    quotaFile: o.quotaFile,
    quotaFileKey: quotaFileKeyOf(o),
    quotaFlushMs: o.quotaFlushMs ?? 1000,
    logger: o.logger ?? noopLogger,
    onEvent: o.onEvent,
    clock: o.clock ?? Date.now,
  }
}

const redisSchema: SchemaObject = {
  type: 'object',
  additionalProperties: false,
  properties: {
    url: { type: 'string', pattern: '^rediss?://' },
    prefix: { type: 'string', minLength: 1, maxLength: 128 },
    commandTimeoutMs: { type: 'integer', minimum: 1, maximum: 60_000 },
    client: {},
    logger: {},
  },
}
const parseRedis = createOptionsResolver<{
  url?: string | undefined
  prefix?: string | undefined
  commandTimeoutMs?: number | undefined
  client?: Redis | undefined
  logger?: Logger | undefined
}>({
  pkg: `${PKG} redisStore`,
  codePrefix: 'GH_RL',
  schema: redisSchema,
  handChecked: ['client', 'logger'],
  secretKeys: ['url'],
})

export function resolveRedisStoreOptions(options: unknown): {
  client: Redis | undefined
  url: string | undefined
  prefix: string
  commandTimeoutMs: number
  logger: Logger | undefined
} {
  const o = parseRedis(options)
  if ((o.client === undefined) === (o.url === undefined)) {
    throw new GatehouseConfigError(
      'GH_RL_REDIS_CLIENT_MISSING',
      `${PKG}: redisStore needs exactly one of client or url`,
    )
  }
  if (o.client !== undefined) {
    const c = o.client as unknown as Record<string, unknown>
    if (
      typeof c !== 'object' ||
      c === null ||
      typeof c.evalsha !== 'function' ||
      typeof c.status !== 'string'
    ) {
      throw new GatehouseConfigError(
        'GH_RL_REDIS_CLIENT_MISSING',
        `${PKG}: redisStore client must be an ioredis client (got ${describe(o.client)})`,
      )
    }
  }
  if (o.logger !== undefined && !isLogger(o.logger))
    throw invalid(`redisStore logger must have error, warn, info and debug methods`)
  return {
    client: o.client,
    url: o.url,
    prefix: o.prefix ?? 'gatehouse:rl:',
    commandTimeoutMs: o.commandTimeoutMs ?? 500,
    logger: o.logger,
  }
}
