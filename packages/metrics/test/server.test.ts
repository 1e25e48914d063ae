import net from 'node:net'
import { recordingLogger, securityEvent, waitFor } from '@gatehouse/testing'
import { createMetrics, startMetricsServer, type MetricsServer } from '@gatehouse/metrics'
import { rawRequest } from './helpers'

describe('startMetricsServer', () => {
  let server: MetricsServer | undefined
  afterEach(async () => {
    await server?.close()
    server = undefined
  })

  it('serves the metrics on its own loopback listener at the path', async () => {
    const metrics = createMetrics({ processMetrics: false })
    metrics.recordEvent(securityEvent())
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

  it('closes a connection over maxConnections on arrival, logs it, and serves again when one closes', async () => {
    const logger = recordingLogger()
    server = await startMetricsServer({ metrics: createMetrics({ processMetrics: false }), port: 0, maxConnections: 3, logger })
    const port = server.port
    const open = (): Promise<{ socket: net.Socket; closed: Promise<string> }> =>
      new Promise((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1')
        let data = ''
        socket.on('data', (c: Buffer) => (data += c.toString()))
        const closed = new Promise<string>((r) => socket.on('close', () => r(data)))
        socket.on('error', () => undefined)
        socket.once('connect', () => resolve({ socket, closed }))
        socket.once('error', reject)
      })
    const held = [await open(), await open(), await open()]
    try {
      // Idle sockets that never send a request hold the three places; the fourth is closed unanswered.
      const over = await open()
      over.socket.write(`GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`)
      expect(await over.closed).toBe('')
      await waitFor(() => logger.calls.some((c) => c.level === 'warn' && /maxConnections/.test(c.message)))
      held.pop()!.socket.destroy()
      await waitFor(async () => (await fetch(server!.url).then((r) => r.status, () => 0)) === 200)
    } finally {
      for (const h of held) h.socket.destroy()
    }
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
    [{ maxConnections: 0 }, 'GH_METRICS_INVALID_OPTIONS', /maxConnections: must be >= 1/],
    [{ hots: '127.0.0.1' }, 'GH_METRICS_UNKNOWN_OPTION', /did you mean "host"/],
    [{ allowedHosts: 'gatehouse.internal' }, 'GH_METRICS_INVALID_OPTIONS', /allowedHosts: must be array/],
    [{ allowedHosts: ['gatehouse.internal:9090'] }, 'GH_METRICS_INVALID_OPTIONS', /allowedHosts\[0\]: must match pattern/],
    [{ allowedHosts: ['ok', 'gatehouse.internal.'] }, 'GH_METRICS_INVALID_OPTIONS', /allowedHosts\[1\]: must match pattern/],
    [{ allowedHosts: ['http://gatehouse'] }, 'GH_METRICS_INVALID_OPTIONS', /allowedHosts\[0\]: must match pattern/],
    [{ allowedHosts: ['a..b'] }, 'GH_METRICS_INVALID_OPTIONS', /allowedHosts\[0\]: must match pattern/],
    [{ allowedhosts: [] }, 'GH_METRICS_UNKNOWN_OPTION', /did you mean "allowedHosts"/],
  ])('rejects %j with %s', async (options, code, message) => {
    const withMetrics = { metrics: createMetrics({ processMetrics: false }), ...(options as object) }
    const input = Object.keys(options as object).length === 0 ? options : withMetrics
    await expect(startMetricsServer(input as never)).rejects.toMatchObject({ code, message: expect.stringMatching(message) })
  })
})

describe('startMetricsServer on loopback: the Host check (DNS rebinding)', () => {
  let server: MetricsServer
  const METRIC = 'gatehouse_auth_failures_total{provider="claude"} 1'
  const REFUSAL = 'Misdirected Request: this listener answers only its own host names\n'
  /** GET the metrics with exactly this Host line (`PORT` stands for the listener's port). */
  const get = (host: string, method = 'GET') =>
    rawRequest(server.port, `${method} /metrics HTTP/1.1\r\nHost: ${host.replace('PORT', String(server.port))}\r\nConnection: close`)

  beforeAll(async () => {
    const metrics = createMetrics({ processMetrics: false })
    metrics.recordEvent(securityEvent())
    server = await startMetricsServer({ metrics, port: 0, allowedHosts: ['gatehouse-metrics', 'Metrics.Internal'] })
  })
  afterAll(() => server.close())

  it.each([
    'localhost:PORT',
    'localhost',
    'LOCALHOST:PORT',
    'grafana.localhost:PORT',
    '127.0.0.1:PORT',
    '127.0.0.1',
    '[::1]',
    '[::1]:PORT',
    'gatehouse-metrics',
    'Gatehouse-Metrics:PORT',
    'metrics.internal:PORT',
  ])('answers Host: %s with the metrics', async (host) => {
    const res = await get(host)
    expect(res.status).toBe(200)
    expect(res.body).toContain(METRIC)
  })

  it.each([
    'attacker.example',
    'attacker.example:PORT',
    '127.0.0.1.nip.io:PORT',
    'localhost.attacker.example',
    'gatehouse-metrics.attacker.example',
    'localhost.',
    'localhost.:PORT',
    'localhost:PORT:PORT',
    'localhost:99999',
    '[::1',
    '[::1]x',
    'a b',
    '',
  ])('refuses Host: %p with 421 and no metric', async (host) => {
    const res = await get(host)
    expect(res.status).toBe(421)
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8')
    expect(res.headers['connection']).toBe('close')
    expect(res.headers['cache-control']).toBe('no-store')
    expect(res.body).toBe(REFUSAL)
  })

  it('refuses a HEAD with a foreign Host too, before looking at the path', async () => {
    expect((await get('attacker.example', 'HEAD')).status).toBe(421)
    expect((await rawRequest(server.port, 'GET /elsewhere HTTP/1.1\r\nHost: attacker.example\r\nConnection: close')).status).toBe(421)
  })

  it('refuses a request without a Host', async () => {
    // HTTP/1.0 may omit Host, so Node hands it over and the check refuses it.
    const old = await rawRequest(server.port, 'GET /metrics HTTP/1.0')
    expect(old.status).toBe(421)
    expect(old.body).toBe(REFUSAL)
    // HTTP/1.1 requires it: Node answers 400 before the listener sees the request.
    const none = await rawRequest(server.port, 'GET /metrics HTTP/1.1\r\nConnection: close')
    expect(none.status).toBe(400)
    expect(none.body).not.toContain('gatehouse_')
  })

  it('answers a request from the same client again once it sends a good Host', async () => {
    expect((await get('attacker.example:PORT')).status).toBe(421)
    expect((await get('localhost:PORT')).body).toContain(METRIC)
  })
})
