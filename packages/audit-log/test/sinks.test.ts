import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createAuditLogger, type AuditLogger, type AuditSinkDrop } from '@gatehouse/audit-log'
import { fileLines, newKey, recordingLogger, sampleEvent, tempDir, waitFor } from './helpers'
import {
  SyslogReceiver,
  fast,
  httpsSink,
  startHttpsCollector,
  syslogSink,
  testCertificate,
} from './receivers'

jest.setTimeout(15_000)

let dir: string
let cleanup: () => void
let file: string
let key: string
const open: AuditLogger[] = []

beforeAll(() => {
  testCertificate() // the RSA key takes a moment: make it once, before the timed tests
})
beforeEach(() => {
  ;({ dir, cleanup } = tempDir())
  file = join(dir, 'audit.log')
  key = newKey()
})
afterEach(async () => {
  await Promise.all(open.splice(0).map((a) => a.close().catch(() => undefined)))
  cleanup()
})

const track = (a: AuditLogger): AuditLogger => (open.push(a), a)
const logN = (audit: AuditLogger, from: number, to: number): void => {
  for (let i = from; i <= to; i++) audit.log(sampleEvent({ request_id: `req-${i}`, details: { n: i } }))
}

describe('syslog sink (RFC 5424 over TLS, RFC 5425 framing)', () => {
  it('ships every line, exactly as the file has it, in order, with RFC 5424 headers', async () => {
    const receiver = new SyslogReceiver()
    const port = await receiver.start()
    try {
      const audit = track(
        createAuditLogger({
          file,
          key,
          sinks: [syslogSink(port, { hostname: 'gw-1', facility: 'local4' })],
        }),
      )
      logN(audit, 1, 20)
      audit.log(sampleEvent({ event_type: 'security_violation', result: 'ip_denied' }))
      await audit.close()
      const local = fileLines(file)
      expect(local).toHaveLength(22) // 21 events and the closing checkpoint
      expect(receiver.lines()).toEqual(local)
      const [first] = receiver.messages
      expect(first).toMatchObject({
        pri: 20 * 8 + 5,
        version: '1',
        hostname: 'gw-1',
        appName: 'gatehouse',
        procId: String(process.pid),
        msgId: 'auth_failure',
        sd: '-',
      })
      expect(first!.timestamp).toBe('2026-02-19T23:00:00.000Z')
      expect(receiver.messages[20]).toMatchObject({ pri: 20 * 8 + 4, msgId: 'security_violation' })
      expect(receiver.messages[21]).toMatchObject({ pri: 20 * 8 + 5, msgId: 'checkpoint' })
      expect(audit.sinkStats()).toEqual([
        {
          name: `syslog://127.0.0.1:${port}`,
          type: 'syslog',
          queued: 0,
          sent: 22,
          resent: 0,
          dropped: 0,
          failures: 0,
          connected: false,
        },
      ])
    } finally {
      await receiver.stop()
    }
  })

  it('loses nothing while the receiver restarts: the queue replays on the same port', async () => {
    const receiver = new SyslogReceiver()
    const port = await receiver.start()
    const logger = recordingLogger()
    try {
      const audit = track(
        createAuditLogger({
          file,
          key,
          logger,
          sinks: [syslogSink(port, { host: 'localhost' })],
        }),
      )
      logN(audit, 1, 10)
      await waitFor(() => receiver.lines().length === 10)
      await receiver.stop()
      logN(audit, 11, 30) // the receiver is down: these wait in the queue
      await audit.flush() // the local write is not held up by the missing receiver
      expect(fileLines(file)).toHaveLength(30)
      await waitFor(() => audit.sinkStats()[0]!.failures >= 2)
      expect(audit.sinkStats()[0]!.connected).toBe(false)
      await receiver.start(port)
      await waitFor(() => receiver.lines().length === 30, 5000)
      logN(audit, 31, 35)
      await audit.close()
      expect(receiver.lines()).toEqual(fileLines(file)) // 35 events, the checkpoint, in order, none missing
      expect(fileLines(file)).toHaveLength(36)
      expect(audit.sinkStats()[0]).toMatchObject({ dropped: 0, queued: 0 })
      expect(logger.calls.find((c) => c.meta?.code === 'GH_AUDIT_SINK_UNREACHABLE')).toBeDefined()
      expect(logger.calls.find((c) => c.level === 'warn' && /delivers again/.test(c.message))).toBeDefined()
    } finally {
      await receiver.stop()
    }
  })

  it('sends again what a receiver that crashed mid-stream may not have read (at least once)', async () => {
    const receiver = new SyslogReceiver()
    const port = await receiver.start()
    receiver.crashAfter = 5
    try {
      const audit = track(
        createAuditLogger({
          file,
          key,
          sinks: [syslogSink(port)],
        }),
      )
      logN(audit, 1, 50) // one write, one burst on the wire; the receiver reads 5 and drops the rest
      await waitFor(() => receiver.lines().length === 50, 5000)
      await audit.close()
      expect(receiver.lines()).toEqual(fileLines(file))
      expect(receiver.messages.length).toBeGreaterThan(51) // some lines arrived twice: same seq, same hash
      expect(audit.sinkStats()[0]!.resent).toBeGreaterThanOrEqual(45)
    } finally {
      await receiver.stop()
    }
  })
})

describe('syslog sink: a stalled, full or closing receiver, and its certificate', () => {
  it('never holds up log() or the local write while the receiver stalls', async () => {
    const sockets = new Set<Socket>()
    const stalled = createNetServer((s) => sockets.add(s)) // accepts, never speaks TLS
    await new Promise<void>((r) => stalled.listen(0, '127.0.0.1', () => r()))
    const { port } = stalled.address() as AddressInfo
    try {
      const audit = track(
        createAuditLogger({
          file,
          key,
          sinks: [syslogSink(port, { connectTimeout: 100, closeTimeout: 50 })],
        }),
      )
      const t0 = performance.now()
      logN(audit, 1, 2000)
      const logged = performance.now() - t0
      await audit.flush()
      expect(fileLines(file)).toHaveLength(2000)
      expect(logged).toBeLessThan(1500) // generous on a loaded machine: the point is that nothing waits for the receiver
      await waitFor(() => audit.sinkStats()[0]!.failures >= 1)
      expect(audit.sinkStats()[0]).toMatchObject({ sent: 0, queued: 2000, connected: false })
    } finally {
      for (const s of sockets) s.destroy()
      await new Promise((r) => stalled.close(r))
    }
  })

  it.each<['drop-oldest' | 'drop-newest', number[]]>([
    ['drop-oldest', [8, 9, 10, 11, 12]],
    ['drop-newest', [1, 2, 3, 4, 5]],
  ])(
    'past maxQueue, while the receiver is away, %s: counts the drops and calls onDrop',
    async (overflow, survivors) => {
      const receiver = new SyslogReceiver()
      const port = await receiver.start()
      await receiver.stop() // a port nobody listens on any more
      const drops: AuditSinkDrop[] = []
      const audit = track(
        createAuditLogger({
          file,
          key,
          checkpoints: { enabled: false },
          sinks: [syslogSink(port, { maxQueue: 5, overflow, onDrop: (d) => drops.push(d) })],
        }),
      )
      logN(audit, 1, 12)
      await audit.flush()
      expect(audit.sinkStats()[0]).toMatchObject({ queued: 5, dropped: 7 })
      expect(drops).toHaveLength(7)
      expect(drops[0]).toEqual({ sink: `syslog://127.0.0.1:${port}`, count: 1, reason: 'queue_full' })
      await receiver.start(port)
      await waitFor(() => receiver.lines().length === 5, 5000)
      expect(receiver.lines().map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual(survivors)
      await receiver.stop()
    },
  )

  it('gives up at closeTimeout and reports what was not delivered', async () => {
    const receiver = new SyslogReceiver()
    const port = await receiver.start()
    await receiver.stop()
    const logger = recordingLogger()
    const audit = createAuditLogger({
      file,
      key,
      logger,
      sinks: [syslogSink(port, { closeTimeout: 200 })],
    })
    logN(audit, 1, 3)
    const t0 = Date.now()
    await audit.close() // resolves: the local log is complete
    expect(Date.now() - t0).toBeLessThan(2000)
    expect(audit.sinkStats()[0]).toMatchObject({ queued: 0, dropped: 4 })
    expect(logger.calls.find((c) => c.meta?.code === 'GH_AUDIT_SINK_CLOSED')?.message).toMatch(
      /4 line\(s\) were not delivered/,
    )
  })

  it('refuses a receiver whose certificate does not chain to the configured CA', async () => {
    const receiver = new SyslogReceiver()
    const port = await receiver.start()
    const logger = recordingLogger()
    try {
      const audit = track(
        createAuditLogger({
          file,
          key,
          logger,
          sinks: [{ type: 'syslog', host: '127.0.0.1', port, ...fast, closeTimeout: 100 }],
        }),
      )
      logN(audit, 1, 2)
      await waitFor(() => logger.calls.some((c) => c.meta?.code === 'GH_AUDIT_SINK_UNREACHABLE'))
      expect(receiver.messages).toHaveLength(0)
      expect(audit.sinkStats()[0]).toMatchObject({ sent: 0, queued: 2 })
    } finally {
      await receiver.stop()
    }
  })
})

describe('https sink', () => {
  it('retries a collector that fails its first attempts, then delivers every line in order', async () => {
    const collector = await startHttpsCollector({ failFirst: 2 })
    try {
      const audit = track(
        createAuditLogger({
          file,
          key,
          sinks: [
            httpsSink(collector.url, {
              headers: { authorization: 'Bearer collector-token-5678' },
              batchSize: 50,
              flushInterval: 20,
            }),
          ],
        }),
      )
      logN(audit, 1, 120)
      await audit.close()
      const local = fileLines(file)
      expect(local).toHaveLength(121)
      expect(collector.lines()).toEqual(local)
      expect(collector.requests.slice(0, 2).map((r) => r.status)).toEqual([503, 503])
      expect(collector.requests[0]!.body).toBe(collector.requests[2]!.body) // the same batch, retried
      expect(collector.requests[2]!.headers).toMatchObject({
        'content-type': 'application/x-ndjson',
        authorization: 'Bearer collector-token-5678',
      })
      expect(audit.sinkStats()[0]).toMatchObject({
        type: 'https',
        sent: 121,
        failures: 2,
        dropped: 0,
        queued: 0,
      })
      expect(audit.sinkStats()[0]!.name).toMatch(/^https:\/\/localhost:\d+\/ingest$/) // no query: it may hold a token
    } finally {
      await collector.close()
    }
  })

  it('replays what was queued while the collector was down once it is back on its port', async () => {
    const first = await startHttpsCollector()
    const port = Number(new URL(first.url).port)
    await first.close()
    const audit = track(
      createAuditLogger({ file, key, sinks: [httpsSink(first.url, { flushInterval: 10 })] }),
    )
    logN(audit, 1, 30)
    await waitFor(() => audit.sinkStats()[0]!.failures >= 2)
    const again = await startHttpsCollector({ port })
    try {
      await waitFor(() => again.lines().length === 30, 5000)
      logN(audit, 31, 40)
      await audit.close()
      expect(again.lines()).toEqual(fileLines(file)) // 40 events and the checkpoint, in order
      expect(audit.sinkStats()[0]).toMatchObject({ sent: 41, dropped: 0, queued: 0 })
    } finally {
      await again.close()
    }
  })

  it('drops a batch the collector refuses as content (400) and goes on', async () => {
    const collector = await startHttpsCollector({ failFirst: 1, failStatus: 400 })
    const drops: AuditSinkDrop[] = []
    const logger = recordingLogger()
    try {
      const audit = track(
        createAuditLogger({
          file,
          key,
          logger,
          checkpoints: { enabled: false },
          sinks: [
            httpsSink(collector.url, {
              headers: { authorization: 'Bearer hdr-secret-9999' },
              batchSize: 3,
              flushInterval: 0,
              onDrop: (d) => drops.push(d),
            }),
          ],
        }),
      )
      logN(audit, 1, 3)
      await waitFor(() => drops.length === 1)
      logN(audit, 4, 6)
      await audit.close()
      expect(drops[0]).toMatchObject({ count: 3, reason: 'rejected' })
      expect(collector.lines()).toEqual(fileLines(file).slice(3))
      expect(logger.calls.find((c) => c.meta?.code === 'GH_AUDIT_SINK_REJECTED')).toBeDefined()
      expect(JSON.stringify(logger.calls)).not.toMatch(/collector-secret-1234|hdr-secret-9999/)
      expect(JSON.stringify(audit.sinkStats())).not.toMatch(/collector-secret-1234|hdr-secret-9999/)
    } finally {
      await collector.close()
    }
  })
})

describe('what crosses the wire', () => {
  it('carries no secret unmasked: audit key, provider keys, bearer tokens', async () => {
    const receiver = new SyslogReceiver()
    const port = await receiver.start()
    const collector = await startHttpsCollector()
    const anthropic = `sk-ant-api03-${'Q'.repeat(90)}`
    const bearer = 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ'
    const clientKey = `gate_live_${'A'.repeat(43)}`
    try {
      const audit = track(
        createAuditLogger({
          file,
          key,
          sinks: [syslogSink(port), httpsSink(collector.url, { flushInterval: 10 })],
        }),
      )
      audit.log(
        sampleEvent({
          details: { authorization: bearer, upstream: anthropic, note: `leaked ${key}`, client: clientKey },
        }),
      )
      audit.log(sampleEvent({ result: `token ${anthropic}`, user_id: clientKey }))
      await audit.close()
      const wire = [receiver.plaintext, ...collector.requests.map((r) => r.body)]
      expect(receiver.messages).toHaveLength(3)
      expect(collector.lines()).toHaveLength(3)
      for (const text of wire) {
        for (const secret of [
          anthropic,
          bearer.slice(7),
          clientKey,
          key,
          Buffer.from(key).toString('base64'),
        ]) {
          expect(text).not.toContain(secret)
        }
        expect(text).toContain('sk-ant-')
      }
    } finally {
      await receiver.stop()
      await collector.close()
    }
  })
})
