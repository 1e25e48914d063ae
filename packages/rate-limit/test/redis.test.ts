import { spawn, type ChildProcess } from 'node:child_process'
import http from 'node:http'
import { rm } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import Redis from 'ioredis'
import request from 'supertest'
import { collectEvents, createTestApp, freePort, listen, recordingLogger, type RunningServer, sleep, waitFor } from '@gatehouse/testing'
import { periodOf, quota, rateLimit, redisStore, tokenLimit, type RedisStore } from '@gatehouse/rate-limit'
import { buildForChild } from './child'
import { deletePrefix, REDIS_URL, send, startRedis, stopRedis, testPrefix } from './helpers'

const prefix = testPrefix()
let admin: Redis

beforeAll(() => {
  admin = new Redis(REDIS_URL)
})
afterAll(async () => {
  await deletePrefix(admin, prefix)
  admin.disconnect()
})

describe('redisStore', () => {
  let store: RedisStore
  beforeEach(() => {
    store = redisStore({ url: REDIS_URL, prefix })
  })
  afterEach(async () => {
    await store.shutdown()
  })

  it('keeps buckets in Redis on Redis time, deleting full ones and expiring partial ones', async () => {
    const bucket = { namespace: 'req:t', key: 'k1', capacity: 3, refillPerSecond: 1 }
    expect(await store.take(bucket, 1)).toMatchObject({ allowed: true, tokens: 2, msUntilFull: 1000 })
    const key = `${prefix}b:req:t:k1`
    const [ts, [secs, micros]] = await Promise.all([admin.hget(key, 'ts'), admin.time()])
    const redisNow = Number(secs) * 1000 + Math.floor(Number(micros) / 1000)
    expect(redisNow - Number(ts)).toBeGreaterThanOrEqual(0)
    expect(redisNow - Number(ts)).toBeLessThan(1000)
    const ttl = await admin.pttl(key)
    expect(ttl).toBeGreaterThan(1000)
    expect(ttl).toBeLessThanOrEqual(2000)
    await store.take(bucket, 1)
    await store.take(bucket, 1)
    const refused = await store.take(bucket, 1)
    expect(refused.allowed).toBe(false)
    expect(refused.msUntilAvailable).toBeGreaterThan(900)
    await store.adjust(bucket, -5) // give back more than was taken: capped, and a full bucket is deleted
    expect(await admin.exists(key)).toBe(0)
    expect(await store.peek(bucket)).toMatchObject({ tokens: 3, msUntilFull: 0 })
  })

  it('goes into debt on adjust and says when tokens are back', async () => {
    const bucket = { namespace: 'tok:t', key: 'k2', capacity: 100, refillPerSecond: 10 }
    await store.take(bucket, 100)
    await store.adjust(bucket, 50)
    const state = await store.take(bucket, 10)
    expect(state.allowed).toBe(false)
    expect(state.tokens).toBeLessThan(-49)
    expect(state.msUntilAvailable).toBeGreaterThan(5900)
    expect(state.msUntilAvailable).toBeLessThanOrEqual(6000)
  })

  it('keeps quotas by calendar month in Redis time and never passes the limit at admission', async () => {
    const q = { namespace: 'quota:t', key: 'claude', limit: 100 }
    const first = await store.quotaReserve(q, 60)
    expect(first).toMatchObject({ allowed: true, used: 60, period: periodOf(Date.now()) })
    expect(
      Math.abs(
        first.msUntilReset -
          (Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth() + 1, 1) - Date.now()),
      ),
    ).toBeLessThan(2000)
    expect(await store.quotaReserve(q, 41)).toMatchObject({ allowed: false, used: 60 })
    expect(await store.quotaSettle(q, first.period, -20)).toMatchObject({ allowed: true, used: 40 })
    expect(await store.quotaSettle(q, first.period - 1, 500)).toMatchObject({ allowed: false, used: 40 }) // another month: dropped
    expect(await store.quotaGet(q)).toMatchObject({ used: 40 })
    expect(await admin.ttl(`${prefix}q:quota:t:claude`)).toBeGreaterThan(50 * 24 * 3600)
    // A counter left from an earlier month starts again.
    await admin.hset(`${prefix}q:quota:t:claude`, 'p', String(first.period - 1), 'u', '99')
    expect(await store.quotaReserve(q, 100)).toMatchObject({ allowed: true, used: 100, period: first.period })
    expect(await store.quotaReserve(q, 1)).toMatchObject({ allowed: false, used: 100 })
    expect(await store.quotaReserve(q, 0)).toMatchObject({ allowed: true, used: 100 }) // reserves nothing: never refused
    await store.quotaReset('quota:t', 'claude')
    expect(await store.quotaGet(q)).toMatchObject({ used: 0 })
  })

  it('escapes glob characters of the prefix when it resets a namespace', async () => {
    const odd = redisStore({ url: REDIS_URL, prefix: `${prefix}[odd*]?:` })
    try {
      await odd.take({ namespace: 'n', key: 'k', capacity: 5, refillPerSecond: 0.01 }, 1)
      await store.take({ namespace: 'n', key: 'k', capacity: 5, refillPerSecond: 0.01 }, 1) // under the plain prefix
      await odd.resetNamespace('n')
      expect(await admin.exists(`${prefix}[odd*]?:b:n:k`)).toBe(0)
      expect(await admin.exists(`${prefix}b:n:k`)).toBe(1)
    } finally {
      await odd.shutdown()
    }
  })

  it('resets one namespace with SCAN, leaving others', async () => {
    const a = { namespace: 'req:scan-a', capacity: 5, refillPerSecond: 0.01 }
    for (let i = 0; i < 30; i++) await store.take({ ...a, key: `k${i}` }, 1)
    await store.take({ namespace: 'req:scan-b', key: 'x', capacity: 5, refillPerSecond: 0.01 }, 1)
    await store.resetNamespace('req:scan-a')
    expect(await admin.keys(`${prefix}b:req:scan-a:*`)).toEqual([])
    expect(await admin.exists(`${prefix}b:req:scan-b:x`)).toBe(1)
  })

  it('answers ping', async () => {
    expect(await store.ping()).toBe(true)
    expect(store.stats()).toEqual({ errors: 0 })
  })

  it('works with a client you own, and leaves it open on shutdown', async () => {
    const client = new Redis(REDIS_URL, { enableOfflineQueue: false })
    await new Promise((r) => client.once('ready', r))
    const own = redisStore({ client, prefix })
    expect((await own.take({ namespace: 'own', key: 'k', capacity: 2, refillPerSecond: 1 }, 1)).allowed).toBe(
      true,
    )
    await own.shutdown()
    expect(client.status).toBe('ready')
    client.disconnect()
  })
})

describe('two processes sharing one Redis', () => {
  const children: ChildProcess[] = []
  let built: { dir: string; args: string[] }
  beforeAll(async () => {
    built = await buildForChild('limited-app')
  })
  afterAll(async () => {
    await rm(built.dir, { recursive: true, force: true })
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null) return resolve()
            c.once('exit', () => resolve())
            c.kill('SIGTERM')
          }),
      ),
    )
  })

  function startInstance(sharedPrefix: string, burst: number): Promise<number> {
    const child = spawn(process.execPath, built.args, {
      env: { ...process.env, GH_REDIS_URL: REDIS_URL, GH_PREFIX: sharedPrefix, GH_BURST: String(burst) },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    children.push(child)
    let stderr = ''
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`instance did not start: ${stderr}`)), 25_000)
      createInterface({ input: child.stdout! }).once('line', (line) => {
        clearTimeout(timer)
        resolve((JSON.parse(line) as { port: number }).port)
      })
      child.once('exit', (code) => reject(new Error(`instance exited with ${code}: ${stderr}`)))
    })
  }

  it('enforce one combined limit', async () => {
    const shared = `${prefix}shared:`
    const [portA, portB] = await Promise.all([startInstance(shared, 50), startInstance(shared, 50)])
    const agent = new http.Agent({ keepAlive: true, maxSockets: 60 })
    const wave = async (
      n: number,
      port: (i: number) => number,
    ): Promise<{ status: number; pid?: number }[]> =>
      (
        await Promise.all(
          Array.from({ length: n }, (_, i) =>
            send(`http://127.0.0.1:${port(i)}`, { path: '/v1/chat/completions', agent }),
          ),
        )
      ).map((r) => ({
        status: r.status,
        ...(r.status === 200 ? { pid: (JSON.parse(r.body) as { pid: number }).pid } : {}),
      }))
    try {
      const first = await wave(30, () => portA) // 30 of the 50 on instance A
      const second = await wave(30, () => portB) // instance B sees what A used: 20 left
      const third = await wave(60, (i) => (i % 2 === 0 ? portA : portB)) // nothing left anywhere
      const admitted = (rs: { status: number }[]): number => rs.filter((r) => r.status === 200).length
      expect([admitted(first), admitted(second), admitted(third)]).toEqual([30, 20, 0])
      expect([...first, ...second, ...third].filter((r) => r.status === 429)).toHaveLength(70)
      const pids = new Set([...first, ...second].filter((r) => r.pid !== undefined).map((r) => r.pid))
      expect(pids.size).toBe(2) // two processes really did the admitting

      // A full bucket again, then 120 requests at once spread over both instances: 50 admitted.
      await deletePrefix(admin, shared)
      const together = await wave(120, (i) => (i % 2 === 0 ? portA : portB))
      expect(admitted(together)).toBe(50)
    } finally {
      agent.destroy()
    }
  }, 60_000)
})

describe('Redis unreachable', () => {
  it('serves under onStoreError allow: logged at error once per interval, counted, bounded latency', async () => {
    const closed = await freePort()
    const logger = recordingLogger()
    const store = redisStore({ url: `redis://127.0.0.1:${closed}`, prefix, commandTimeoutMs: 200 })
    const limiter = rateLimit({ requestsPerMinute: 1, store, logger })
    const app = createTestApp(limiter)
    const started = Date.now()
    for (let i = 0; i < 5; i++) {
      const res = await request(app).get('/v1/models')
      expect(res.status).toBe(200)
      expect(res.body.locals.rateLimit).toEqual({
        'requests:ip': { kind: 'requests', scope: 'ip', limit: 0, remaining: 0, failedOpen: true },
      })
    }
    expect(Date.now() - started).toBeLessThan(2000)
    expect(limiter.stats()).toEqual({ limited: 0, storeErrors: 5, failedOpen: 5, failedClosed: 0 })
    expect(store.stats().errors).toBe(5)
    const errors = logger.calls.filter((l) => l.level === 'error')
    expect(errors).toHaveLength(1) // throttled
    expect(errors[0]).toMatchObject({
      message: '@gatehouse/rate-limit: store unavailable; serving without this limit (onStoreError allow)',
      meta: { code: 'GH_RL_STORE_UNAVAILABLE', limiter: 'ip', scope: 'ip' },
    })
    await store.shutdown()
  })

  it.each<[string, string, unknown]>([
    [
      'claude',
      '/v1/messages',
      {
        type: 'error',
        error: {
          type: 'overloaded_error',
          message: 'Rate limiting is temporarily unavailable; retry shortly.',
        },
      },
    ],
    [
      'openai',
      '/v1/chat/completions',
      {
        error: {
          message: 'Rate limiting is temporarily unavailable; retry shortly.',
          type: 'server_error',
          param: null,
          code: 'service_unavailable',
        },
      },
    ],
    [
      'gemini',
      '/v1beta/models/g:generateContent',
      {
        error: {
          code: 503,
          message: 'Rate limiting is temporarily unavailable; retry shortly.',
          status: 'UNAVAILABLE',
        },
      },
    ],
  ])(
    'refuses with 503 in the %s shape under onStoreError deny, with an event and no store detail',
    async (provider, path, expected) => {
      const closed = await freePort()
      const password = `pw-${Math.random().toString(36).slice(2)}`
      const store = redisStore({
        url: `redis://:${password}@127.0.0.1:${closed}`,
        prefix,
        commandTimeoutMs: 150,
      })
      const { events, onEvent } = collectEvents()
      const limiters = [
        rateLimit({ scope: 'global', requestsPerMinute: 100, store, onStoreError: 'deny', onEvent }),
        tokenLimit({ scope: 'global', tokensPerMinute: 100_000, store, onStoreError: 'deny', onEvent }),
        quota({ scope: 'global', limit: 1_000_000, store, onStoreError: 'deny', onEvent }),
      ]
      for (const limiter of limiters) {
        const res = await request(createTestApp(limiter)).post(path).send('{}')
        expect(res.status).toBe(503)
        expect(res.body).toEqual(expected)
        expect(res.headers['retry-after']).toBe('5')
        expect(res.headers['cache-control']).toBe('no-store')
        expect(res.text).not.toMatch(/redis|127\.0\.0\.1|ECONNREFUSED/i)
        expect(res.text).not.toContain(password)
        expect(limiter.stats()).toMatchObject({ failedClosed: 1, failedOpen: 0, storeErrors: 1 })
      }
      expect(events).toHaveLength(3)
      for (const e of events) {
        expect(e).toMatchObject({
          event_type: 'security_violation',
          provider,
          result: 'store_unavailable',
          details: { code: 'GH_RL_STORE_UNAVAILABLE', scope: 'global', on_store_error: 'deny' },
        })
      }
      expect(JSON.stringify(events)).not.toContain(password)
      await store.shutdown()
    },
  )
})

describe('Redis unreachable, then back', () => {
  it('stops limiting while Redis is down and resumes without a restart when it returns', async () => {
    const port = await freePort()
    let server: ChildProcess = await startRedis(port)
    const logger = recordingLogger()
    const store = redisStore({ url: `redis://127.0.0.1:${port}`, prefix, commandTimeoutMs: 200, logger })
    const { events, onEvent } = collectEvents()
    const allow = rateLimit({ scope: 'global', requestsPerMinute: 1, burst: 2, store, name: 'allow', logger })
    const deny = rateLimit({
      scope: 'global',
      requestsPerMinute: 1,
      burst: 2,
      store,
      name: 'deny',
      onStoreError: 'deny',
      onEvent,
    })
    const tokens = tokenLimit({ scope: 'global', tokensPerMinute: 1000, defaultMaxTokens: 100, store })
    let running: RunningServer | undefined
    try {
      running = await listen(createTestApp(allow, tokens))
      const denyApp = createTestApp(deny)
      const url = running.url
      const statuses = async (n: number): Promise<number[]> => {
        const out: number[] = []
        for (let i = 0; i < n; i++)
          out.push((await send(url, { path: '/v1/chat/completions', body: '{}' })).status)
        return out
      }
      expect(await statuses(3)).toEqual([200, 200, 429]) // limiting in Redis
      expect((await request(denyApp).get('/')).status).toBe(200)

      await stopRedis(server)
      await sleep(100)
      expect(await statuses(4)).toEqual([200, 200, 200, 200]) // onStoreError allow: served
      expect(allow.stats()).toMatchObject({ failedOpen: 4, limited: 1 })
      expect(tokens.stats()).toMatchObject({ failedOpen: 4 })
      const denied = await request(denyApp).get('/')
      expect(denied.status).toBe(503)
      expect(events.map((e) => e.result)).toEqual(['store_unavailable'])

      server = await startRedis(port) // empty: no buckets, no cached scripts
      await waitFor(() => store.ping(), 10_000, { every: 50 })
      expect(await store.ping()).toBe(true)
      expect(await statuses(3)).toEqual([200, 200, 429]) // limiting again, same store, same process
      expect((await request(denyApp).get('/')).status).toBe(200)
      expect(allow.stats().failedOpen).toBe(4)
      expect(logger.calls.some((l) => l.level === 'info' && /reachable again/.test(l.message))).toBe(true)
    } finally {
      await running?.close()
      await store.shutdown()
      await stopRedis(server)
    }
  }, 40_000)
})
