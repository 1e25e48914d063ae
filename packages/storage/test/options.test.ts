import { createStorageSink, resolveDatabaseUrl, resolveStorageSinkConfig, type StorageSinkOptions } from '@gatehouse/storage'
import { pgUrl } from './helpers'

const URL_WITH_PASSWORD = 'postgresql://gatehouse:s3cr3t-Passw0rd-value@db.internal:5432/gatehouse'

describe('storage sink options', () => {
  it.each<[unknown, string, RegExp]>([
    [{}, 'GH_STORAGE_INVALID_OPTIONS', /url is required/],
    [{ url: pgUrl(), pool: {} }, 'GH_STORAGE_INVALID_OPTIONS', /give url or pool, not both/],
    [{ pool: { nope: true } }, 'GH_STORAGE_INVALID_OPTIONS', /pool must be a pg Pool/],
    [{ url: pgUrl(), batchsize: 10 }, 'GH_STORAGE_UNKNOWN_OPTION', /batchsize: unknown key \(did you mean "batchSize"\?\)/],
    [{ url: pgUrl(), batchSize: 0 }, 'GH_STORAGE_INVALID_OPTIONS', /batchSize: must be >= 1 \(got 0\)/],
    [{ url: pgUrl(), batchSize: 5000 }, 'GH_STORAGE_INVALID_OPTIONS', /batchSize: must be <= 1000/],
    [{ url: pgUrl(), maxQueue: -1 }, 'GH_STORAGE_INVALID_OPTIONS', /maxQueue/],
    [{ url: pgUrl(), flushInterval: 'soon' }, 'GH_STORAGE_INVALID_OPTIONS', /flushInterval is invalid \(got "soon"\)/],
    [{ url: pgUrl(), flushInterval: 0 }, 'GH_STORAGE_INVALID_OPTIONS', /flushInterval must be at least 1ms/],
    [{ url: pgUrl(), retentionDays: -1 }, 'GH_STORAGE_INVALID_OPTIONS', /retentionDays: must be >= 0/],
    [{ url: pgUrl(), retentionDays: 1.5 }, 'GH_STORAGE_INVALID_OPTIONS', /retentionDays: must be integer/],
    [{ url: pgUrl(), retentionInterval: '10ms' }, 'GH_STORAGE_INVALID_OPTIONS', /retentionInterval must be at least 1s/],
    [{ url: pgUrl(), maxBodyBytes: 'huge' }, 'GH_STORAGE_INVALID_OPTIONS', /maxBodyBytes is invalid/],
    [{ url: pgUrl(), storeBodies: 'yes' }, 'GH_STORAGE_INVALID_OPTIONS', /storeBodies: must be boolean/],
    [{ url: pgUrl(), logger: console.log }, 'GH_STORAGE_INVALID_OPTIONS', /logger must have error, warn, info and debug/],
    [{ url: pgUrl(), onEvent: 'x' }, 'GH_STORAGE_INVALID_OPTIONS', /onEvent must be a function/],
    [{ url: pgUrl(), schema: 'Gate-House' }, 'GH_STORAGE_INVALID_SCHEMA', /schema must be 1 to 63 lower-case letters/],
    [{ url: pgUrl(), schema: 'x; DROP TABLE y' }, 'GH_STORAGE_INVALID_SCHEMA', /schema must be/],
    [{ url: 'mysql://db/x' }, 'GH_STORAGE_INVALID_URL', /url must start with postgresql:\/\/ or postgres:\/\/ \(got a "mysql:" URL\)/],
    [{ url: 'not a url' }, 'GH_STORAGE_INVALID_URL', /url is not a valid URL/],
    [{ url: 42 }, 'GH_STORAGE_INVALID_URL', /url must be a postgresql:\/\/ URL/],
    [{ url: `${pgUrl()}?sslmode=maybe` }, 'GH_STORAGE_INVALID_URL', /sslmode must be one of disable, require, verify-ca, verify-full, no-verify \(got "maybe"\)/],
  ])('rejects %j with %s', (options, code, message) => {
    expect(() => createStorageSink(options as StorageSinkOptions)).toThrow(expect.objectContaining({ code, message: expect.stringMatching(message) }))
  })

  it('detects a request passed where options belong', () => {
    const fakeReq = { headers: {}, method: 'GET', url: '/' }
    expect(() => createStorageSink(fakeReq as never)).toThrow(expect.objectContaining({ code: 'GH_STORAGE_NOT_CALLED' }))
  })

  it('never quotes the URL (it may hold a password)', () => {
    for (const url of [`${URL_WITH_PASSWORD}?sslmode=prefer`, URL_WITH_PASSWORD.replace('postgresql', 'mysql'), `${URL_WITH_PASSWORD}?sslmode=x`]) {
      try {
        createStorageSink({ url })
        throw new Error('accepted')
      } catch (err) {
        expect((err as Error).message).not.toContain('s3cr3t')
        expect((err as Error).message).not.toContain('db.internal')
      }
    }
  })

  it('applies the documented defaults, frozen, without touching the input', () => {
    const input = { url: URL_WITH_PASSWORD, knownSecrets: ['abcdefgh12'], batchSize: undefined } as unknown as StorageSinkOptions
    const copy = structuredClone(input)
    const config = resolveStorageSinkConfig(input)
    expect(input).toEqual(copy)
    expect(Object.isFrozen(config)).toBe(true)
    expect(config).toMatchObject({
      schema: 'gatehouse',
      batchSize: 100,
      flushIntervalMs: 1000,
      maxQueue: 10_000,
      storeBodies: false,
      maxBodyBytes: 256 * 1024,
      maxQueueBodyBytes: 32 * 1024 * 1024,
      retentionDays: 30,
      retentionIntervalMs: 3_600_000,
      connectTimeoutMs: 5000,
      queryTimeoutMs: 30_000,
      poolSize: 2,
      migrate: false,
      reportIntervalMs: 60_000,
      target: { description: 'db.internal:5432/gatehouse', sslmode: undefined },
    })
  })

  it.each([
    ['?sslmode=require', 'sslmode=verify-full'],
    ['?sslmode=verify-ca', 'sslmode=verify-full'],
    ['?sslmode=verify-full', 'sslmode=verify-full'],
    ['?sslmode=disable', 'sslmode=disable'],
    ['?uselibpqcompat=true&sslmode=require', 'sslmode=require'],
  ])('hands pg %s as %s (certificate and host checked; never a plaintext fallback)', (query, expected) => {
    const r = resolveDatabaseUrl(`${URL_WITH_PASSWORD}${query}`)
    expect(r.connectionString).toContain(expected)
    expect(r.target.description).toBe('db.internal:5432/gatehouse')
  })

  it('describes a host given as a query parameter and an IPv6 host', () => {
    expect(resolveDatabaseUrl('postgresql:///gatehouse?host=/var/run/postgresql').target.description).toBe('/var/run/postgresql:5432/gatehouse')
    expect(resolveDatabaseUrl('postgres://u@[::1]:6543/db').target.description).toBe('[::1]:6543/db')
  })
})
