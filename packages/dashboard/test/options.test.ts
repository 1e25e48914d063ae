import express from 'express'
import request from 'supertest'
import { dashboardRouter, resolveDashboardConfig, type DashboardOptions } from '@gatehouse/dashboard'

describe('dashboard options', () => {
  const key = 'k'.repeat(32)
  it.each<[unknown, string, RegExp]>([
    [{ data: {} }, 'GH_DASHBOARD_WEAK_KEY', /secretKey is required and must be at least 32 characters/],
    [{ secretKey: 'short-key', data: {} }, 'GH_DASHBOARD_WEAK_KEY', /at least 32 characters.*no open mode/],
    [{ secretKey: key }, 'GH_DASHBOARD_INVALID_OPTIONS', /data is required/],
    [{ secretKey: key, data: { recentEvent: () => [] } }, 'GH_DASHBOARD_INVALID_OPTIONS', /data\.recentEvent is not a data provider/],
    [{ secretKey: key, data: { doctor: [] } }, 'GH_DASHBOARD_INVALID_OPTIONS', /data\.doctor must be a function/],
    [{ secretKey: key, data: {}, secureCookie: true }, 'GH_DASHBOARD_UNKNOWN_OPTION', /did you mean "secureCookies"/],
    [{ secretKey: key, data: {}, sessionTtl: '10ms' }, 'GH_DASHBOARD_INVALID_OPTIONS', /sessionTtl must be at least 1s/],
    [{ secretKey: key, data: {}, recentLimit: 0 }, 'GH_DASHBOARD_INVALID_OPTIONS', /recentLimit: must be >= 1/],
    [{ secretKey: key, data: {}, logger: {} }, 'GH_DASHBOARD_INVALID_OPTIONS', /logger must have/],
  ])('rejects %j with %s', (options, code, message) => {
    expect(() => dashboardRouter(options as DashboardOptions)).toThrow(expect.objectContaining({ code, message: expect.stringMatching(message) }))
  })

  it('never quotes the key', () => {
    const secret = 'too-short-but-secret'
    expect(() => dashboardRouter({ secretKey: secret, data: {} })).toThrow(expect.not.objectContaining({ message: expect.stringContaining(secret) }))
  })

  it('answers every path with the login form when no data provider is configured, and still requires the key', async () => {
    const app = express()
    app.use('/d', dashboardRouter({ secretKey: key, data: {}, secureCookies: false }))
    const res = await request(app).get('/d/')
    expect(res.status).toBe(200)
    expect(res.text).toContain('Sign in with the management key')
  })

  it('detects the factory passed to app.use() without being called', () => {
    const fakeReq = { headers: {}, method: 'GET', url: '/' }
    expect(() => dashboardRouter(fakeReq as never)).toThrow(expect.objectContaining({ code: 'GH_DASHBOARD_NOT_CALLED' }))
  })

  it('applies the documented defaults, frozen, without touching the input', () => {
    const input = { secretKey: key, data: {}, recentLimit: undefined } as unknown as DashboardOptions
    const copy = structuredClone(input)
    const config = resolveDashboardConfig(input)
    expect(input).toEqual(copy)
    expect(Object.isFrozen(config)).toBe(true)
    expect(config).toMatchObject({
      secureCookies: true,
      sessionTtlMs: 3_600_000,
      maxSessions: 100,
      recentLimit: 100,
      dataTimeoutMs: 5000,
      maxLoginFailures: 5,
      loginFailureWindowMs: 900_000,
      knownSecrets: [],
    })
  })
})
