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
