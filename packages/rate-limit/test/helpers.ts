import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import Redis from 'ioredis'
import { httpRequest, waitFor, type HttpReply } from '@gatehouse/testing'

export const REDIS_URL = 'redis://127.0.0.1:6379'

/** A unique key prefix for one test file. */
export const testPrefix = (): string => `gh-test-${randomBytes(6).toString('hex')}:`

/** Delete every key under a prefix (SCAN + DEL, never FLUSHALL). */
export async function deletePrefix(client: Redis, prefix: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) await client.del(...keys)
  } while (cursor !== '0')
}

/** A throwaway redis-server on `port`, no persistence; resolves once it answers PING. */
export async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'],
    {
      stdio: 'ignore',
    },
  )
  const answers = async (): Promise<boolean> => {
    const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    probe.on('error', () => undefined)
    try {
      await probe.connect()
      await probe.ping()
      return true
    } catch {
      return false
    } finally {
      probe.disconnect()
    }
  }
  try {
    await waitFor(answers, 5000, { every: 50, what: `redis-server on ${port} answering PING` })
  } catch (err) {
    child.kill('SIGKILL')
    throw err
  }
  return child
}

/** Stop a redis-server started by startRedis and wait for it to exit. */
export async function stopRedis(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
}

/** One real HTTP request through `agent` (default: Node's global agent); a body is sent as JSON. */
export const send = (
  url: string,
  options: { method?: string; path?: string; headers?: Record<string, string>; body?: string; agent?: http.Agent } = {},
): Promise<HttpReply> =>
  httpRequest(url, {
    ...options,
    agent: options.agent ?? http.globalAgent,
    headers: { ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers },
  })

/** Send `n` requests at once; returns the statuses. */
export async function burst(
  n: number,
  url: string,
  options: Parameters<typeof send>[1] = {},
): Promise<HttpReply[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: n })
  try {
    return await Promise.all(Array.from({ length: n }, () => send(url, { ...options, agent })))
  } finally {
    agent.destroy()
  }
}
