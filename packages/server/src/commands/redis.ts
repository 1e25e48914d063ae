import Redis from 'ioredis'
import { isGatehouseError } from '@gatehouse/core'
import { RedisKeyStore } from '@gatehouse/client-auth'
import type { GatehouseConfig } from '../config/types'
import { clusterStatus, type ClusterStatus } from '../cluster/replicas'

/** A command's own Redis connection: fails fast, never retries (a CLI command reports and exits). */
function cliRedis(url: string): Redis {
  const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2000, commandTimeout: 2000, retryStrategy: () => null, lazyConnect: true })
  client.on('error', () => undefined)
  return client
}

/**
 * A command's connection to the cluster's Redis (store.type redis), connected; undefined without
 * one in the config. Rejects when Redis cannot be reached: a command never falls back to files the
 * gateways do not read.
 */
export async function connectCliRedis(config: GatehouseConfig): Promise<Redis | undefined> {
  if (config.store.type !== 'redis' || !config.store.url) return undefined
  const client = cliRedis(config.store.url)
  try {
    await client.connect()
  } catch (e) {
    client.disconnect()
    throw new Error(`the cluster's Redis (store.url) cannot be reached: ${(e as Error).message}`)
  }
  return client
}

/**
 * The cluster's key store when the config puts state in Redis (store.type redis), read once;
 * undefined otherwise. Rejects when Redis cannot be read: a key command never falls back to a
 * file the gateways do not read.
 */
export async function openSharedKeyStore(config: GatehouseConfig, salt: string): Promise<{ store: RedisKeyStore; close(): Promise<void> } | undefined> {
  const client = await connectCliRedis(config)
  if (!client) return undefined
  const store = new RedisKeyStore({ client, salt, prefix: config.store.key_prefix })
  const close = async (): Promise<void> => {
    await store.close()
    client.disconnect()
  }
  try {
    await store.start()
  } catch (e) {
    await close()
    throw isGatehouseError(e) ? e : new Error(`the cluster's Redis (store.url) cannot be reached: ${(e as Error).message}`)
  }
  return { store, close }
}

/** The cluster's state (gatehouse doctor) when the config shares state through Redis; undefined otherwise. */
export async function readClusterStatus(config: GatehouseConfig): Promise<ClusterStatus | undefined> {
  if (config.store.type !== 'redis' || !config.store.url) return undefined
  const client = cliRedis(config.store.url)
  try {
    await client.connect().catch(() => undefined)
    return await clusterStatus(client, config.store.key_prefix)
  } finally {
    client.disconnect()
  }
}
