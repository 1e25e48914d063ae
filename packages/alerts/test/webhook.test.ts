import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createAlertEngine } from '@gatehouse/alerts'
import { listen, recordingLogger, type RunningServer, securityEvent, sleep } from '@gatehouse/testing'

interface Received {
  method: string | undefined
  url: string | undefined
  contentType: string | undefined
  body: unknown
}

/** A real webhook receiver answering with the given statuses in turn (then 200). */
async function receiver(statuses: number[]): Promise<{ server: RunningServer; received: Received[] }> {
  const received: Received[] = []
  const server = await listen((req: IncomingMessage, res: ServerResponse) => {
    let raw = ''
    req.on('data', (d: Buffer) => (raw += d.toString()))
    req.on('end', () => {
      received.push({ method: req.method, url: req.url, contentType: req.headers['content-type'], body: JSON.parse(raw) as unknown })
      const status = statuses[received.length - 1] ?? 200
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : 'fail')
    })
  })
  return { server, received }
}

const rule = { name: 'High auth failure rate', condition: 'auth_failures > 2', duration: '5m', action: 'notify_admin' as const }

describe('notify_admin webhook delivery', () => {
  it('posts a Slack-style {text} message, retrying a failing webhook until it answers 200', async () => {
    const { server, received } = await receiver([500, 503])
    const secretPath = `/services/T0/B0/${randomBytes(12).toString('hex')}`
    const logger = recordingLogger()
    const engine = createAlertEngine({ logger, rules: [rule], notify: { webhookUrl: `${server.url}${secretPath}`, retryDelay: '20ms' } })
    try {
      for (let i = 0; i < 3; i++) engine.recordEvent(securityEvent())
      await engine.idle()
      expect(received).toHaveLength(3)
      for (const r of received) {
        expect(r).toEqual({
          method: 'POST',
          url: secretPath,
          contentType: 'application/json',
          body: { text: '[Gatehouse] Alert "High auth failure rate": auth_failures reached 3 in 5m (condition: auth_failures > 2)' },
        })
      }
      expect(engine.stats()).toMatchObject({ fired: 1, delivered: 1, deliveryFailures: 0 })
      expect(logger.calls.filter((c) => /alert delivery failed \(HTTP 50[03]\)/.test(c.message))).toHaveLength(2)
      expect(logger.calls.some((c) => /alert delivered after 2 retries/.test(c.message))).toBe(true)
      expect(logger.text()).not.toContain(secretPath.split('/').pop())
      expect(logger.text()).toContain(server.url) // the origin only
    } finally {
      await engine.shutdown()
      await server.close()
    }
  })

  it('gives up after the configured retries and counts the failure', async () => {
    const { server, received } = await receiver([500, 500, 500, 500, 500])
    const logger = recordingLogger()
    const engine = createAlertEngine({ logger, rules: [rule], notify: { webhookUrl: `${server.url}/hook`, retries: 2, retryDelay: '10ms' } })
    try {
      for (let i = 0; i < 3; i++) engine.recordEvent(securityEvent())
      await engine.idle()
      expect(received).toHaveLength(3)
      expect(engine.stats()).toMatchObject({ delivered: 0, deliveryFailures: 1 })
      expect(logger.calls.find((c) => c.level === 'error')!.message).toBe('@gatehouse/alerts: alert not delivered (HTTP 500)')
    } finally {
      await engine.shutdown()
      await server.close()
    }
  })

  it('retries after a dropped connection and a timeout', async () => {
    let calls = 0
    const server = await listen((req, res) => {
      calls++
      if (calls === 1) req.socket.destroy() // network error
      else if (calls === 2) return // never answers: the attempt times out
      else res.end('ok')
    })
    const logger = recordingLogger()
    const engine = createAlertEngine({ logger, rules: [rule], notify: { webhookUrl: `${server.url}/hook`, retryDelay: '10ms', timeout: '300ms' } })
    try {
      for (let i = 0; i < 3; i++) engine.recordEvent(securityEvent())
      await engine.idle()
      expect(calls).toBe(3)
      expect(engine.stats().delivered).toBe(1)
      const failures = logger.calls.filter((c) => c.level === 'warn' && /delivery failed/.test(c.message)).map((c) => c.message)
      expect(failures).toHaveLength(2)
      expect(failures[1]).toContain('(TimeoutError)')
    } finally {
      await engine.shutdown()
      await server.close()
    }
  })

  it('does not retry a 4xx answer', async () => {
    const { server, received } = await receiver([404])
    const engine = createAlertEngine({ rules: [rule], notify: { webhookUrl: `${server.url}/gone`, retryDelay: '10ms' } })
    try {
      for (let i = 0; i < 3; i++) engine.recordEvent(securityEvent())
      await engine.idle()
      expect(received).toHaveLength(1)
      expect(engine.stats().deliveryFailures).toBe(1)
    } finally {
      await engine.shutdown()
      await server.close()
    }
  })

  it('never delays the caller: recordEvent returns before the webhook answers', async () => {
    let release: () => void = () => undefined
    const gate = new Promise<void>((r) => (release = r))
    const server = await listen((_req, res) => void gate.then(() => res.end('ok')))
    const engine = createAlertEngine({ rules: [rule], notify: { webhookUrl: `${server.url}/slow` } })
    try {
      const started = process.hrtime.bigint()
      for (let i = 0; i < 3; i++) engine.recordEvent(securityEvent())
      expect(Number(process.hrtime.bigint() - started) / 1e6).toBeLessThan(50)
      await sleep(50)
      expect(engine.stats()).toMatchObject({ fired: 1, delivered: 0 })
      release()
      await engine.idle()
      expect(engine.stats().delivered).toBe(1)
    } finally {
      release()
      await engine.shutdown()
      await server.close()
    }
  })

  it('cuts retries short on shutdown', async () => {
    const { server, received } = await receiver([500, 500, 500, 500, 500])
    const engine = createAlertEngine({ rules: [rule], notify: { webhookUrl: `${server.url}/hook`, retries: 4, retryDelay: '10s' } })
    try {
      for (let i = 0; i < 3; i++) engine.recordEvent(securityEvent())
      await sleep(100) // real time: for the first attempt's HTTP round trip to the receiver, not for a retry delay
      const started = Date.now()
      await engine.shutdown()
      expect(Date.now() - started).toBeLessThan(2000)
      expect(received).toHaveLength(1)
      expect(engine.stats().deliveryFailures).toBe(1)
    } finally {
      await server.close()
    }
  })
})
