import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { createAuditLogger, type AuditSinkDrop } from '@gatehouse/audit-log'
import { fileLines, sampleEvent } from './helpers'
import { SyslogReceiver, fast, syslogSink } from './receivers'
import { logN, sinkTestbed } from './sink-testbed'
import { recordingLogger, waitFor } from '@gatehouse/testing'

jest.setTimeout(15_000)

let file: string
let key: string
const { track } = sinkTestbed((f, k) => {
  file = f
  key = k
})

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
