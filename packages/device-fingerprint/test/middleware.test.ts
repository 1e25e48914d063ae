import express from 'express'
import { createProxyMiddleware } from 'http-proxy-middleware'
import request from 'supertest'
import { MockUpstream, createTestApp } from '@gatehouse/testing'
import { applyDeviceFingerprint, deviceFingerprint, stripDeviceFingerprint } from '@gatehouse/device-fingerprint'
import { cleanupDirs, tmpDir } from './helpers'

let upstream: MockUpstream
beforeAll(async () => {
  upstream = await MockUpstream.start()
})
afterEach(() => void upstream.reset())
afterAll(async () => {
  await upstream.close()
  cleanupDirs()
})

const body = { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }

describe('deviceFingerprint through http-proxy-middleware', () => {
  it('sends the fingerprint upstream, replacing a client-sent value, and never back to the client', async () => {
    const fp = deviceFingerprint({ dir: tmpDir() })
    const app = express()
    app.use(fp)
    app.use(createProxyMiddleware({ target: upstream.url, changeOrigin: true }))
    const res = await request(app).post('/v1/chat/completions').set('X-Device-Fingerprint', 'spoofed-by-client').send(body)
    expect(res.status).toBe(200)
    expect(upstream.last!.headers['x-device-fingerprint']).toBe(fp.fingerprint)
    const raw = upstream.last!.rawHeaders.filter((_, i, a) => a[i - 1]?.toLowerCase() === 'x-device-fingerprint')
    expect(raw).toEqual([fp.fingerprint])
    expect(res.headers['x-device-fingerprint']).toBeUndefined()
    expect(JSON.stringify(res.headers)).not.toContain(fp.fingerprint)
    expect(res.text).not.toContain(fp.fingerprint)
  })

  it('keeps it from the client even when the upstream echoes it back (stripDeviceFingerprint in on.proxyRes)', async () => {
    const fp = deviceFingerprint({ dir: tmpDir(), header: 'X-Gateway-Device' })
    upstream.behave({ headers: { 'x-gateway-device': fp.fingerprint } })
    const app = express()
    app.use(fp)
    app.use(createProxyMiddleware({ target: upstream.url, changeOrigin: true, on: { proxyRes: (proxyRes, _req, res) => stripDeviceFingerprint(proxyRes, res) } }))
    const res = await request(app).post('/v1/chat/completions').send(body)
    expect(res.status).toBe(200)
    expect(upstream.last!.headers['x-gateway-device']).toBe(fp.fingerprint)
    expect(upstream.last!.headers['x-device-fingerprint']).toBeUndefined()
    expect(res.headers['x-gateway-device']).toBeUndefined()
    expect(JSON.stringify(res.headers)).not.toContain(fp.fingerprint)
  })

  it('sets the header from on.proxyReq with applyDeviceFingerprint', async () => {
    const dir = tmpDir()
    const fp = deviceFingerprint({ dir })
    const app = express()
    app.use(fp)
    app.use((req, _res, next) => {
      delete req.headers['x-device-fingerprint'] // a proxy layer that rebuilds headers
      next()
    })
    app.use(createProxyMiddleware({ target: upstream.url, changeOrigin: true, on: { proxyReq: (proxyReq, _req, res) => void applyDeviceFingerprint(proxyReq, res) } }))
    await request(app).post('/v1/chat/completions').send(body).expect(200)
    expect(upstream.last!.headers['x-device-fingerprint']).toBe(fp.fingerprint)
    // Same directory, new instance: same id.
    expect(deviceFingerprint({ dir }).fingerprint).toBe(fp.fingerprint)
  })
})

describe('deviceFingerprint in a plain Express app', () => {
  it('puts only the header name in res.locals.gatehouse, never the value', async () => {
    const fp = deviceFingerprint({ dir: tmpDir() })
    const res = await request(createTestApp(fp)).get('/v1/models')
    expect(res.status).toBe(200)
    expect(res.body.locals).toEqual({ deviceFingerprint: { header: 'x-device-fingerprint' } })
    expect(res.text).not.toContain(fp.fingerprint)
  })
})
