import { createAuditLogger, type AuditSinkDrop } from '@gatehouse/audit-log'
import { fileLines, sampleEvent } from './helpers'
import { SyslogReceiver, httpsSink, startHttpsCollector, syslogSink } from './receivers'
import { logN, sinkTestbed } from './sink-testbed'
import { recordingLogger, waitFor } from '@gatehouse/testing'

jest.setTimeout(15_000)

let file: string
let key: string
const { track } = sinkTestbed((f, k) => {
  file = f
  key = k
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

describe('https sink and retention', () => {
  it('ships the retention record, so the collector keeps what was deleted locally and learns when', async () => {
    const collector = await startHttpsCollector()
    try {
      const audit = track(
        createAuditLogger({
          file,
          key,
          maxSize: 3000,
          retention: { maxFiles: 1 },
          sinks: [httpsSink(collector.url, { flushInterval: 10 })],
          checkpoints: { enabled: false },
        }),
      )
      logN(audit, 1, 80)
      await audit.close()
      const shipped = collector.lines().map((l) => JSON.parse(l) as Record<string, unknown>)
      expect(audit.stats().expired).toBeGreaterThan(0)
      expect(shipped.filter((l) => l.request_id !== undefined)).toHaveLength(80) // every event, the deleted ones too
      expect(shipped.map((l) => l.seq)).toEqual(shipped.map((_, i) => i + 1))
      const records = shipped.filter((l) => l.retention !== undefined)
      expect(records.length).toBeGreaterThan(0)
      expect(records[0]!.retention).toMatchObject({ deleted: expect.any(Number), through_seq: expect.any(Number) })
    } finally {
      await collector.close()
    }
  })
})
