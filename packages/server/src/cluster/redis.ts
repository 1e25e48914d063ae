import Redis from 'ioredis'
import type { Logger } from '@gatehouse/core'

/**
 * The one Redis connection the gateway's stores share in distributed mode. Commands fail fast
 * while Redis is down (no offline queue), so `store.on_error` decides instead of a stalled request.
 */
export function createRedisClient(url: string, logger: Logger): Redis {
  const client = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 1000,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    lazyConnect: false,
  })
  let down = false
  client.on('error', (err: Error) => {
    if (!down) logger.error('redis unreachable', { error: err.message })
    down = true
  })
  client.on('ready', () => {
    if (down) logger.info('redis reachable again')
    down = false
  })
  return client
}
