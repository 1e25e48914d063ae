import { chmod, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import request from 'supertest'
import { createTestApp, tempDirs } from '@gatehouse/testing'
import {
  memoryStore,
  quota,
  rateLimit,
  redisStore,
  tokenLimit,
  TokenBucketStore,
  type QuotaOptions,
  type RateLimitOptions,
  type TokenLimitOptions,
} from '@gatehouse/rate-limit'

describe('rateLimit options', () => {
  it.each<[unknown, string, RegExp]>([
    [{ requestsPerSecond: 0 }, 'GH_RL_INVALID_OPTIONS', /requestsPerSecond: must be > 0 \(got 0\)/],
    [{ requestsPerSecond: -5 }, 'GH_RL_INVALID_OPTIONS', /requestsPerSecond/],
    [{ requestsPerSecond: 10, burst: 0 }, 'GH_RL_INVALID_OPTIONS', /burst: must be >= 1 \(got 0\)/],
    [{ requestsPerSecond: 10, burst: 2.5 }, 'GH_RL_INVALID_OPTIONS', /burst: must be integer \(got 2.5\)/],
    [
      { requestsPerSecond: 10, requestsPerMinute: 600 },
      'GH_RL_INVALID_OPTIONS',
      /cannot both be set \(got 10 and 600\)/,
    ],
    [
      { requestsPerSecond: 10, scope: 'user' },
      'GH_RL_INVALID_OPTIONS',
      /scope: must be one of "global", "ip", "key", "provider" \(got "user"\)/,
    ],
    [
      { requestsPerSecond: 10, onStoreError: 'ignore' },
      'GH_RL_INVALID_OPTIONS',
      /onStoreError: must be one of "allow", "deny" \(got "ignore"\)/,
    ],
    [{ requestsPerSecond: 10, standardHeaders: true }, 'GH_RL_INVALID_OPTIONS', /standardHeaders/],
    [{ requestsPerSecond: 10, ipv6Subnet: 129 }, 'GH_RL_INVALID_OPTIONS', /ipv6Subnet/],
    [{ requestsPerSecond: 10, name: 'a b' }, 'GH_RL_INVALID_OPTIONS', /name: must match pattern/],
    [
      { requestsPersecond: 10 },
      'GH_RL_UNKNOWN_OPTION',
      /requestsPersecond: unknown key \(did you mean "requestsPerSecond"\?\)/,
    ],
    [
      { burst: 10 },
      'GH_RL_INVALID_OPTIONS',
      /burst needs requestsPerSecond or requestsPerMinute \(got burst 10 alone\)/,
    ],
    [{}, 'GH_RL_NO_LIMIT', /set requestsPerSecond or requestsPerMinute/],
    [{ scope: 'provider' }, 'GH_RL_NO_LIMIT', /or providers/],
    [
      { scope: 'ip', providers: { claude: { requestsPerMinute: 5 } } },
      'GH_RL_INVALID_OPTIONS',
      /providers is only used with scope "provider" \(got scope "ip"\)/,
    ],
    [{ scope: 'provider', providers: { claude: {} } }, 'GH_RL_NO_LIMIT', /providers.claude sets no rate/],
    [
      { scope: 'provider', providers: { claude: { requestsPerMinute: 5, burts: 3 } } },
      'GH_RL_UNKNOWN_OPTION',
      /providers.claude.burts: unknown key \(did you mean "burst"\?\)/,
    ],
    [
      { requestsPerSecond: 10, store: {} },
      'GH_RL_STORE_INVALID',
      /store must be a RateLimitStore .*got an object without the required methods/,
    ],
    [{ requestsPerSecond: 10, store: 'redis' }, 'GH_RL_STORE_INVALID', /got "redis"/],
    [
      { requestsPerSecond: 10, onEvent: 'log' },
      'GH_RL_INVALID_OPTIONS',
      /onEvent must be a function \(got "log"\)/,
    ],
    [
      { requestsPerSecond: 10, logger: console.log },
      'GH_RL_INVALID_OPTIONS',
      /logger must have error, warn, info and debug methods \(got a function\)/,
    ],
    ['fast', 'GH_RL_INVALID_OPTIONS', /options must be an object/],
  ])('rejects %j with %s', (options, code, message) => {
    let thrown: unknown
    try {
      rateLimit(options as RateLimitOptions)
    } catch (err) {
      thrown = err
    }
    expect(thrown).toMatchObject({ code, name: 'GatehouseConfigError' })
    expect((thrown as Error).message).toMatch(/^@gatehouse\/rate-limit/)
    expect((thrown as Error).message).toMatch(message)
  })

  it('detects the factory passed to app.use() without being called', async () => {
    const app = createTestApp(rateLimit as never)
    const res = await request(app).get('/')
    expect(res.status).toBe(500)
    expect(res.body.code).toBe('GH_RL_NOT_CALLED')
  })

  it('treats undefined like an omitted option and does not mutate or keep the caller object', async () => {
    const options: RateLimitOptions = {
      requestsPerSecond: 1,
      burst: 1,
      scope: undefined,
      ipv6Subnet: undefined,
      name: undefined,
    }
    const copy = JSON.parse(JSON.stringify(options)) as unknown
    const limiter = rateLimit(options)
    expect(JSON.parse(JSON.stringify(options))).toEqual(copy)
    options.burst = 1000 // changing the caller's object later changes nothing
    const app = createTestApp(limiter)
    await request(app).get('/').expect(200)
    const second = await request(app).get('/')
    expect(second.status).toBe(429)
    await limiter.shutdown()
  })

  it('derives the default burst from the rate unit', async () => {
    const perSecond = rateLimit({ requestsPerSecond: 3 })
    const perMinute = rateLimit({ requestsPerMinute: 100, scope: 'global' })
    const a = await request(createTestApp(perSecond)).get('/')
    expect(a.headers['ratelimit-limit']).toBe('3')
    expect(a.headers['ratelimit-policy']).toBe('3;w=1')
    const b = await request(createTestApp(perMinute)).get('/')
    expect(b.headers['ratelimit-limit']).toBe('100')
    expect(b.headers['ratelimit-policy']).toBe('100;w=60')
    expect(b.headers['ratelimit-remaining']).toBe('99')
  })
})

describe('tokenLimit options', () => {
  it.each<[unknown, string, RegExp]>([
    [{}, 'GH_RL_NO_LIMIT', /set tokensPerMinute, or providers/],
    [{ scope: 'key' }, 'GH_RL_NO_LIMIT', /set tokensPerMinute$/],
    [{ tokensPerMinute: 0 }, 'GH_RL_INVALID_OPTIONS', /tokensPerMinute: must be >= 1 \(got 0\)/],
    [
      { tokensPerMinute: 1000, defaultMaxTokens: -1 },
      'GH_RL_INVALID_OPTIONS',
      /defaultMaxTokens: must be >= 0 \(got -1\)/,
    ],
    [
      { tokensPerMinute: 1000, requestsPerMinute: 5 },
      'GH_RL_UNKNOWN_OPTION',
      /requestsPerMinute: unknown key/,
    ],
    [
      { scope: 'provider', providers: { openai: { tokensPerMinute: 1.5 } } },
      'GH_RL_INVALID_OPTIONS',
      /providers.openai.tokensPerMinute: must be integer \(got 1.5\)/,
    ],
    [
      { scope: 'global', providers: { openai: { tokensPerMinute: 100 } } },
      'GH_RL_INVALID_OPTIONS',
      /only used with scope "provider"/,
    ],
    [{ burst: 5 }, 'GH_RL_INVALID_OPTIONS', /burst needs tokensPerMinute/],
  ])('rejects %j with %s', (options, code, message) => {
    expect(() => tokenLimit(options as TokenLimitOptions)).toThrow(
      expect.objectContaining({ code, message: expect.stringMatching(message) }),
    )
  })
})

describe('quota options', () => {
  it.each<[unknown, string, RegExp]>([
    [{}, 'GH_RL_NO_LIMIT', /set limit, or providers/],
    [{ scope: 'key' }, 'GH_RL_NO_LIMIT', /set limit, or keys/],
    [{ limit: -1 }, 'GH_RL_INVALID_OPTIONS', /limit: must be >= 0 \(got -1\)/],
    [
      { limit: 10, reset: 'weekly' },
      'GH_RL_INVALID_OPTIONS',
      /reset: must be one of "monthly" \(got "weekly"\)/,
    ],
    [
      { scope: 'ip', limit: 10 },
      'GH_RL_INVALID_OPTIONS',
      /scope: must be one of "global", "key", "provider" \(got "ip"\)/,
    ],
    [
      { scope: 'provider', providers: { claude: { reset: 'monthly' } } },
      'GH_RL_INVALID_OPTIONS',
      /providers.claude.limit: is required/,
    ],
    [
      { scope: 'global', limit: 5, keys: { key_1: { limit: 1 } } },
      'GH_RL_INVALID_OPTIONS',
      /keys is only used with scope "key"/,
    ],
    [
      { scope: 'key', providers: { claude: { limit: 1 } } },
      'GH_RL_INVALID_OPTIONS',
      /providers is only used with scope "provider"/,
    ],
    [{ limt: 5 }, 'GH_RL_UNKNOWN_OPTION', /limt: unknown key \(did you mean "limit"\?\)/],
  ])('rejects %j with %s', (options, code, message) => {
    expect(() => quota(options as QuotaOptions)).toThrow(
      expect.objectContaining({ code, message: expect.stringMatching(message) }),
    )
  })
})

describe('store options', () => {
  it.each<[unknown, string, RegExp]>([
    [{ maxKeys: 0 }, 'GH_RL_INVALID_OPTIONS', /maxKeys: must be >= 1 \(got 0\)/],
    [{ maxkeys: 10 }, 'GH_RL_UNKNOWN_OPTION', /did you mean "maxKeys"/],
    [{ quotaFlushMs: -1 }, 'GH_RL_INVALID_OPTIONS', /quotaFlushMs/],
    [{ clock: 5 }, 'GH_RL_INVALID_OPTIONS', /clock must be a function \(got 5\)/],
  ])('memoryStore rejects %j with %s', (options, code, message) => {
    expect(() => memoryStore(options as never)).toThrow(
      expect.objectContaining({ code, message: expect.stringMatching(message) }),
    )
  })

  it.each<[unknown, string, RegExp]>([
    [{}, 'GH_RL_REDIS_CLIENT_MISSING', /exactly one of client or url/],
    [{ url: 'http://127.0.0.1:6379' }, 'GH_RL_INVALID_OPTIONS', /url: must match pattern/],
    [
      { url: 'redis://127.0.0.1:1', commandTimeoutMs: 0 },
      'GH_RL_INVALID_OPTIONS',
      /commandTimeoutMs: must be >= 1/,
    ],
    [{ client: {} }, 'GH_RL_REDIS_CLIENT_MISSING', /must be an ioredis client/],
  ])('redisStore rejects %j with %s', (options, code, message) => {
    expect(() => redisStore(options as never)).toThrow(
      expect.objectContaining({ code, message: expect.stringMatching(message) }),
    )
  })

  it('never echoes a Redis URL, which may carry a password', () => {
    const secret = `pw${Date.now()}`
    let message = ''
    try {
      redisStore({ url: `http://:${secret}@127.0.0.1:6379` })
    } catch (err) {
      message = (err as Error).message
    }
    expect(message).toMatch(/url/)
    expect(message).not.toContain(secret)
  })

  it.each<[unknown, RegExp]>([
    [{ capacity: 0 }, /capacity must be a positive number \(got 0\)/],
    [{ capacity: 1.5 }, /capacity must be an integer \(got 1.5\)/],
    [{ refillPerSecond: -1 }, /refillPerSecond must be a positive number \(got -1\)/],
    [{ store: {} }, /must be a RateLimitStore/],
  ])('TokenBucketStore rejects %j', (options, message) => {
    expect(() => new TokenBucketStore(options as never)).toThrow(
      expect.objectContaining({ message: expect.stringMatching(message) }),
    )
  })

  describe('quotaFile', () => {
    const tmp = tempDirs('rl-opts')
    let dir: string
    beforeEach(() => {
      dir = tmp.make()
    })
    afterEach(tmp.cleanup)

    it('refuses a quota file that others can write', async () => {
      const file = join(dir, 'quota.json')
      await writeFile(file, JSON.stringify({ version: 1, quotas: {} }), { mode: 0o600 })
      await chmod(file, 0o666)
      expect(() => memoryStore({ quotaFile: file })).toThrow(
        expect.objectContaining({
          code: 'GH_RL_QUOTA_FILE_INSECURE',
          message: expect.stringMatching(/writable by group or others \(mode 666\); run chmod 600/),
        }),
      )
    })

    it.each<[string, RegExp]>([
      ['not json', /is not JSON/],
      [JSON.stringify({ version: 2, quotas: {} }), /is not a Gatehouse quota file/],
      [
        JSON.stringify({ version: 1, quotas: { 'a\u0000b': { period: 202613, used: 1 } } }),
        /has a bad entry/,
      ],
      [
        JSON.stringify({ version: 1, quotas: { 'a\u0000b': { period: 202601, used: -4 } } }),
        /has a bad entry/,
      ],
    ])('refuses a corrupt quota file (%s) instead of resetting quotas', async (text, message) => {
      const file = join(dir, 'quota.json')
      await writeFile(file, text, { mode: 0o600 })
      expect(() => memoryStore({ quotaFile: file })).toThrow(
        expect.objectContaining({
          code: 'GH_RL_QUOTA_FILE_INVALID',
          message: expect.stringMatching(message),
        }),
      )
    })
  })
})
