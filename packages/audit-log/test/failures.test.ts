import { chmodSync, mkdirSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import request from 'supertest'
import { createTestApp, recordingLogger, tempDir, waitFor } from '@gatehouse/testing'
import { accessLog, createAuditLogger } from '@gatehouse/audit-log'
import { fileLines, newKey, runChild, sampleEvent } from './helpers'

let dir: string
let cleanup: () => void
beforeEach(() => ({ dir, cleanup } = tempDir()))
afterEach(() => cleanup())

const codeOf = (e: Error): string => (e as Error & { code: string }).code

describe('createAuditLogger on a full disk (/dev/full)', () => {
  it('reports, counts and turns unhealthy without crashing; flush and close reject', async () => {
    const logger = recordingLogger()
    const reported: Error[] = []
    const audit = createAuditLogger({ file: '/dev/full', key: newKey(), logger, onWriteError: (e) => reported.push(e), retryInterval: 20 })
    audit.log(sampleEvent())
    await expect(audit.flush()).rejects.toMatchObject({ code: 'GH_AUDIT_WRITE_FAILED', statusCode: 503 })
    expect(audit.healthy).toBe(false)
    expect(reported.map(codeOf)).toContain('GH_AUDIT_WRITE_FAILED')
    expect(reported[0]!.message).toMatch(/^@gatehouse\/audit-log: cannot write the audit file \/dev\/full \(ENOSPC\)/)
    expect(logger.calls.filter((c) => c.level === 'error').map((c) => c.meta?.code)).toContain('GH_AUDIT_WRITE_FAILED')
    // retried with backoff, each failure counted
    await waitFor(() => audit.stats().writeErrors >= 3)
    expect(audit.stats()).toMatchObject({ written: 0, pending: 1 })
    await expect(audit.close()).rejects.toMatchObject({ code: 'GH_AUDIT_WRITE_FAILED', message: expect.stringMatching(/1 event\(s\) could not be written/) })
    expect(audit.stats().dropped).toBe(1)
  })

  it('drops past maxQueuedEvents, counts every drop and reports GH_AUDIT_BACKLOG_FULL once', async () => {
    const reported: Error[] = []
    const audit = createAuditLogger({ file: '/dev/full', key: newKey(), maxQueuedEvents: 5, retryInterval: '1h', onWriteError: (e) => reported.push(e) })
    for (let i = 0; i < 12; i++) audit.log(sampleEvent())
    await waitFor(() => audit.stats().writeErrors >= 1)
    expect(audit.stats()).toMatchObject({ accepted: 12, pending: 5, dropped: 7 })
    expect(reported.map(codeOf).filter((c) => c === 'GH_AUDIT_BACKLOG_FULL')).toHaveLength(1)
    await expect(audit.close()).rejects.toMatchObject({ code: 'GH_AUDIT_WRITE_FAILED' })
  })

  it('keeps answering requests while the audit file cannot be written', async () => {
    const audit = createAuditLogger({ file: '/dev/full', key: newKey(), retryInterval: '1h' })
    const app = createTestApp(accessLog({ onEvent: audit.log }))
    for (let i = 0; i < 5; i++) await request(app).get('/v1/models').expect(200)
    await waitFor(() => audit.stats().accepted === 5)
    expect(audit.healthy).toBe(false)
    await expect(audit.close()).rejects.toMatchObject({ code: 'GH_AUDIT_WRITE_FAILED' })
  })
})

describe('createAuditLogger on an unwritable directory', () => {
  it('does not throw when the directory cannot be created, reports GH_AUDIT_WRITE_FAILED and recovers once it can', async () => {
    const blocker = join(dir, 'logs')
    writeFileSync(blocker, 'a file where the log directory should be')
    const logger = recordingLogger()
    const reported: Error[] = []
    const audit = createAuditLogger({ file: join(blocker, 'audit.log'), key: newKey(), logger, onWriteError: (e) => reported.push(e), retryInterval: 10 })
    expect(audit.healthy).toBe(false)
    expect(reported[0]).toMatchObject({ code: 'GH_AUDIT_WRITE_FAILED' })
    expect(reported[0]!.message).toMatch(/cannot open the audit file .*\((ENOTDIR|EEXIST)\)/)
    audit.log(sampleEvent())
    await expect(audit.flush()).rejects.toMatchObject({ code: 'GH_AUDIT_WRITE_FAILED' })
    expect(audit.stats().writeErrors).toBeGreaterThanOrEqual(2)

    unlinkSync(blocker)
    await waitFor(() => audit.healthy)
    await audit.flush()
    expect(fileLines(join(blocker, 'audit.log'))).toHaveLength(1)
    expect(logger.calls.some((c) => c.level === 'warn' && /writable again/.test(c.message))).toBe(true)
    await audit.close()
  })

  it('reports EACCES for a directory the process may not write (run as an unprivileged user)', async () => {
    const logs = join(dir, 'logs')
    mkdirSync(logs)
    chmodSync(dir, 0o755)
    chmodSync(logs, 0o555)
    const asRoot = process.getuid?.() === 0
    const child = runChild(['probe', join(logs, 'audit.log'), newKey()], asRoot ? { uid: 65534, gid: 65534 } : {})
    const { code, stdout } = await child.exited
    expect(code).toBe(0)
    const report = JSON.parse(stdout.trim()) as Record<string, unknown>
    expect(report).toMatchObject({ healthyAtStart: false, healthy: false, flush: 'GH_AUDIT_WRITE_FAILED' })
    expect(report.errors).toContain('GH_AUDIT_WRITE_FAILED')
    expect((report.loggerErrors as string[])[0]).toMatch(/cannot open the audit file .*\(EACCES\)/)
    expect(report.writeErrors).toBeGreaterThanOrEqual(1)
    if (asRoot) expect(report.uid).toBe(65534)
  })
})

describe('createAuditLogger after close()', () => {
  it('drops, counts and reports GH_AUDIT_CLOSED once; healthy is false', async () => {
    const reported: Error[] = []
    const file = join(dir, 'audit.log')
    const audit = createAuditLogger({ file, key: newKey(), onWriteError: (e) => reported.push(e) })
    audit.log(sampleEvent())
    await audit.close()
    audit.log(sampleEvent())
    audit.log(sampleEvent())
    expect(audit.healthy).toBe(false)
    expect(audit.stats().dropped).toBe(2)
    expect(reported.map(codeOf)).toEqual(['GH_AUDIT_CLOSED'])
    expect(fileLines(file)).toHaveLength(1)
    await expect(audit.close()).resolves.toBeUndefined()
  })

  it('survives an onWriteError callback that throws', async () => {
    const logger = recordingLogger()
    const audit = createAuditLogger({
      file: '/dev/full',
      key: newKey(),
      logger,
      retryInterval: '1h',
      onWriteError: () => {
        throw new Error('callback failed')
      },
    })
    audit.log(sampleEvent())
    await expect(audit.flush()).rejects.toMatchObject({ code: 'GH_AUDIT_WRITE_FAILED' })
    expect(logger.calls.some((c) => /onWriteError threw/.test(c.message))).toBe(true)
    await audit.close().catch(() => undefined)
  })
})
