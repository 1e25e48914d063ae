import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import Redis from 'ioredis'
import type { Logger } from '@gatehouse/core'

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

/** A logger that records what it was given. */
export function recordingLogger(): Logger & {
  lines: { level: string; message: string; meta?: Record<string, unknown> }[]
} {
  const lines: { level: string; message: string; meta?: Record<string, unknown> }[] = []
  const at =
    (level: string) =>
    (message: string, meta?: Record<string, unknown>): void =>
      void lines.push({ level, message, ...(meta ? { meta } : {}) })
  return { lines, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') }
}

/** A free TCP port on 127.0.0.1 (closed again at once). */
export async function freePort(): Promise<number> {
  const srv = net.createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const port = (srv.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => srv.close(() => resolve()))
  return port
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
  const deadline = Date.now() + 5000
  for (;;) {
    const probe = new Redis(port, '127.0.0.1', {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    })
    probe.on('error', () => undefined)
    try {
      await probe.connect()
      await probe.ping()
      probe.disconnect()
      return child
    } catch {
      probe.disconnect()
      if (Date.now() > deadline) {
        child.kill('SIGKILL')
        throw new Error(`redis-server on ${port} did not start`)
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }
}

/** Stop a redis-server started by startRedis and wait for it to exit. */
export async function stopRedis(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
}

export interface HttpResult {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

/** One real HTTP request through `agent`. */
export function send(
  url: string,
  options: {
    method?: string
    path?: string
    headers?: Record<string, string>
    body?: string
    agent?: http.Agent
  } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const target = new URL(options.path ?? '/', url)
    const req = http.request(
      target,
      {
        method: options.method ?? (options.body !== undefined ? 'POST' : 'GET'),
        agent: options.agent,
        headers: {
          ...(options.body !== undefined
            ? {
                'content-type': 'application/json',
                'content-length': String(Buffer.byteLength(options.body)),
              }
            : {}),
          ...options.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        )
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    if (options.body !== undefined) req.write(options.body)
    req.end()
  })
}

/** Send `n` requests at once; returns the statuses. */
export async function burst(
  n: number,
  url: string,
  options: Parameters<typeof send>[1] = {},
): Promise<HttpResult[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: n })
  try {
    return await Promise.all(Array.from({ length: n }, () => send(url, { ...options, agent })))
  } finally {
    agent.destroy()
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
