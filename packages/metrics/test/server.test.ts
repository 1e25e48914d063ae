import net from 'node:net'
import { createMetrics, startMetricsServer, type MetricsServer } from '@gatehouse/metrics'
import { event, recordingLogger } from './helpers'

describe('startMetricsServer', () => {
  let server: MetricsServer | undefined
  afterEach(async () => {
    await server?.close()
    server = undefined
  })

  it('serves the metrics on its own loopback listener at the path', async () => {
    const metrics = createMetrics({ processMetrics: false })
    metrics.recordEvent(event())
    server = await startMetricsServer({ metrics, port: 0 })
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    const res = await fetch(server.url)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(await res.text()).toContain('gatehouse_auth_failures_total{provider="claude"} 1')
  })

  it('refuses a Host that is not an IP literal, localhost or a configured name (DNS rebinding), with no metric in the answer', async () => {
    const metrics = createMetrics({ processMetrics: false })
    metrics.recordEvent(event())
    server = await startMetricsServer({ metrics, port: 0, allowedHosts: ['gatehouse-metrics'] })
    const port = server.port
    /** One request with exactly this Host line (or none), over a raw socket. */
    const get = (hostLine: string | undefined): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1')
        let got = ''
        socket.setEncoding('utf8')
        socket.on('data', (d: string) => (got += d))
        socket.on('error', reject)
        socket.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 0), body: got.slice(got.indexOf('\r\n\r\n') + 4) }))
        socket.end(`GET /metrics HTTP/1.1\r\n${hostLine === undefined ? '' : `Host: ${hostLine}\r\n`}Connection: close\r\n\r\n`)
      })
    for (const ok of [`127.0.0.1:${port}`, `localhost:${port}`, 'LOCALHOST', '[::1]', `[::1]:${port}`, 'app.localhost', 'gatehouse-metrics', `Gatehouse-Metrics:${port}`]) {
      expect([ok, (await get(ok)).status]).toEqual([ok, 200])
    }
    for (const bad of ['attacker.example', `attacker.example:${port}`, 'localhost.', '127.0.0.1:99999999', '[::1', 'a b', 'localhost:80:80', 'gatehouse-metrics.evil.example']) {
      const res = await get(bad)
      // Node itself refuses some malformed Host lines with 400 before the listener sees them.
      expect([bad, [400, 421].includes(res.status)]).toEqual([bad, true])
      expect(res.body).not.toContain('gatehouse_')
    }
    expect((await get('attacker.example')).status).toBe(421)
    // HTTP/1.1 requires Host: a request without one is refused too.
    const none = await get(undefined)
    expect([400, 421]).toContain(none.status)
    expect(none.body).not.toContain('gatehouse_')
  })

  it('refuses a bad allowedHosts option, naming it', async () => {
    await expect(startMetricsServer({ metrics: createMetrics({ processMetrics: false }), port: 0, allowedHosts: ['a b'] })).rejects.toThrow(/allowedHosts/)
  })

  it('answers HEAD without a body, other methods 405 and other paths 404', async () => {
    server = await startMetricsServer({ metrics: createMetrics({ processMetrics: false }), port: 0, path: '/internal/metrics' })
    const head = await fetch(server.url, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(await head.text()).toBe('')
    const post = await fetch(server.url, { method: 'POST' })
    expect(post.status).toBe(405)
    expect(post.headers.get('allow')).toBe('GET, HEAD')
    const other = await fetch(server.url.replace('/internal/metrics', '/metrics'))
    expect(other.status).toBe(404)
    expect(await other.text()).toBe('Not Found\n')
    expect((await fetch(`${server.url}?x=1`)).status).toBe(200)
  })

  it('answers 500 and logs when rendering fails', async () => {
    const logger = recordingLogger()
    const broken = { contentType: 'text/plain', render: () => Promise.reject(new Error('registry broke')) }
    server = await startMetricsServer({ metrics: broken, port: 0, logger })
    const res = await fetch(server.url)
    expect(res.status).toBe(500)
    expect(await res.text()).toBe('Internal Server Error\n')
    expect(logger.calls[0]).toMatchObject({ level: 'error', meta: { error: 'registry broke' } })
  })

  it('rejects with GH_METRICS_LISTEN_FAILED when the port is taken', async () => {
    const metrics = createMetrics({ processMetrics: false })
    server = await startMetricsServer({ metrics, port: 0 })
    await expect(startMetricsServer({ metrics, port: server.port })).rejects.toMatchObject({
      code: 'GH_METRICS_LISTEN_FAILED',
      message: expect.stringMatching(/^@gatehouse\/metrics: cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/),
    })
  })

  it.each<[unknown, string, RegExp]>([
    [{}, 'GH_METRICS_INVALID_OPTIONS', /metrics is required/],
    [{ port: 70000 }, 'GH_METRICS_INVALID_OPTIONS', /port: must be <= 65535/],
    [{ path: 'metrics' }, 'GH_METRICS_INVALID_OPTIONS', /path: must match pattern/],
    [{ hots: '127.0.0.1' }, 'GH_METRICS_UNKNOWN_OPTION', /did you mean "host"/],
  ])('rejects %j with %s', async (options, code, message) => {
    const withMetrics = { metrics: createMetrics({ processMetrics: false }), ...(options as object) }
    const input = Object.keys(options as object).length === 0 ? options : withMetrics
    await expect(startMetricsServer(input as never)).rejects.toMatchObject({ code, message: expect.stringMatching(message) })
  })
})
