import type Redis from 'ioredis'
import { parseDuration, type Logger } from '@gatehouse/core'
import { FileKeyStore, RedisKeyStore, type ManagedKeyStore } from '@gatehouse/client-auth'
import type { GatehouseConfig } from '../config/types'
import { createRedisClient } from '../cluster/redis'
import { localRuntimeControl, sharedRuntimeControl, type RuntimeControl } from '../cluster/shared-runtime'
import type { GatewayRuntime } from '../runtime'
import type { GeneratedSecrets } from './secrets'
import type { AuthPaths } from '../auth-paths'

/** Where the gateway keeps what a client key or an operator can change: this process, or Redis for every replica. */
export interface SharedState {
  runtime: GatewayRuntime
  /** One connection for every store in distributed mode (store.type redis). */
  redis: Redis | undefined
  prefix: string
  keyStore: ManagedKeyStore & { close(): unknown }
  control: RuntimeControl
  /** The shared copies were confirmed within the last 3 s (always true with nothing shared). */
  fresh(): boolean
}

/**
 * Distributed mode: one Redis connection for every store; client keys, maintenance and the kill
 * switch are then shared by every replica (cluster mode), the rest of the policy by config.
 */
export function createSharedState(config: GatehouseConfig, paths: AuthPaths, secrets: GeneratedSecrets, logger: Logger): SharedState {
  const runtime: GatewayRuntime = {
    maintenance: { enabled: config.server.maintenance_mode, message: config.server.message },
    disabledProviders: new Map(),
    shuttingDown: false,
  }
  const redis = config.store.type === 'redis' && config.store.url ? createRedisClient(config.store.url, logger) : undefined
  const prefix = config.store.key_prefix
  const keyStore = redis
    ? new RedisKeyStore({ client: redis, salt: secrets.salt, prefix, maxStaleMs: parseDuration(config.store.max_staleness), logger })
    : new FileKeyStore({ file: paths.keyFile, salt: secrets.salt, logger })
  const control = redis ? sharedRuntimeControl(runtime, { client: redis, prefix, logger }) : localRuntimeControl(runtime)
  // The shared copies are checked every second: one not confirmed for 3 s means Redis is out of reach.
  const fresh = (): boolean => control.freshWithin(3000) && (!(keyStore instanceof RedisKeyStore) || keyStore.freshWithin(3000))
  return { runtime, redis, prefix, keyStore, control, fresh }
}
