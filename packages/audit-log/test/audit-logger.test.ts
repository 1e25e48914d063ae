import { appendFileSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SECURITY_EVENT_TYPES, type SecurityEvent } from '@gatehouse/core'
import { createAuditLogger, listAuditFiles, verifyAuditLog } from '@gatehouse/audit-log'
import { fileLines, newKey, parsedLines, sampleEvent } from './helpers'
import { fakeClock, recordingLogger, tempDir, type FakeClock } from '@gatehouse/testing'

let dir: string
let cleanup: () => void
beforeEach(() => ({ dir, cleanup } = tempDir()))
afterEach(() => cleanup())

describe('createAuditLogger: the line format', () => {
  it('writes the seed format, fields in order, then seq, prev_hash on the first line, and hash', async () => {
    const file = join(dir, 'logs', 'audit.log')
    const audit = createAuditLogger({ file, key: newKey() })
    audit.log(sampleEvent())
    const { details: _details, ...withoutDetails } = sampleEvent({ event_type: 'auth_success', result: 'ok' })
    audit.log(withoutDetails)
    await audit.close()
    const lines = fileLines(file)
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(
      /^\{"timestamp":"2026-02-19T23:00:00\.000Z","event_type":"auth_failure","provider":"claude","user_id":"key_3f9a0b1c","ip":"192\.168\.1\.100","request_id":"req-1","result":"invalid_token","details":\{"reason":"Token expired"\},"seq":1,"prev_hash":"","hash":"[0-9a-f]{64}"\}$/,
    )
    expect(lines[1]).toMatch(/"result":"ok","seq":2,"hash":"[0-9a-f]{64}"\}$/)
    expect(lines[1]).not.toContain('prev_hash')
  })

  it('creates the directory 0700 and the file 0600', async () => {
    const file = join(dir, 'new', 'audit.log')
    const audit = createAuditLogger({ file, key: newKey() })
    audit.log(sampleEvent())
    await audit.close()
    expect(statSync(join(dir, 'new')).mode & 0o777).toBe(0o700)
    expect(statSync(file).mode & 0o777).toBe(0o600)
  })

  it('normalises the timestamp and fills a missing one', async () => {
    const file = join(dir, 'audit.log')
    const audit = createAuditLogger({ file, key: newKey() })
    audit.log(sampleEvent({ timestamp: '2026-02-19T23:00:00Z' }))
    audit.log(sampleEvent({ timestamp: 'not a date' }))
    await audit.close()
    const [a, b] = parsedLines(file)
    expect(a!.timestamp).toBe('2026-02-19T23:00:00.000Z')
    expect(Date.parse(b!.timestamp as string)).toBeGreaterThan(Date.parse('2026-01-01'))
  })

  it('writes only the event types in `events`, counts the rest as filtered, and rejects non-events', async () => {
    const file = join(dir, 'audit.log')
    const audit = createAuditLogger({ file, key: newKey(), events: ['auth_failure', 'security_violation'] })
    for (const type of SECURITY_EVENT_TYPES) audit.log(sampleEvent({ event_type: type }))
    audit.log({ event_type: 'made_up' } as unknown as SecurityEvent)
    audit.log(null as unknown as SecurityEvent)
    await audit.close()
    expect(parsedLines(file).map((l) => l.event_type)).toEqual(['auth_failure', 'security_violation'])
    expect(audit.stats()).toMatchObject({ accepted: 2, written: 2, filtered: 5, rejected: 2, dropped: 0 })
  })

  it('replaces oversized details and keeps the line under maxLineBytes', async () => {
    const file = join(dir, 'audit.log')
    const audit = createAuditLogger({ file, key: newKey(), maxLineBytes: 2048 })
    audit.log(sampleEvent({ details: { blob: 'x'.repeat(10_000) } }))
    await audit.close()
    const [line] = fileLines(file)
    expect(Buffer.byteLength(line!)).toBeLessThan(2048)
    expect((JSON.parse(line!) as { details: unknown }).details).toEqual({ _truncated: true, _bytes: expect.any(Number) })
  })

  it('keeps CR, LF, ANSI escapes, NEL and U+2028/2029 inside one escaped JSON line (raw bytes)', async () => {
    const file = join(dir, 'audit.log')
    const key = newKey()
    const audit = createAuditLogger({ file, key })
    const hostile = 'a\r\nb\n{"event_type":"auth_success","forged":true}\u001b[31mred\u001b[0m\u2028x\u2029y\u0085z\u009b2J'
    audit.log(
      sampleEvent({
        user_id: hostile,
        ip: hostile,
        request_id: hostile,
        result: hostile,
        provider: hostile,
        details: { [hostile]: hostile, nested: [hostile] },
      }),
    )
    audit.log(sampleEvent())
    await audit.close()
    const raw = readFileSync(file)
    expect(raw.filter((b) => b === 0x0a)).toHaveLength(2)
    expect(raw.includes(0x0d)).toBe(false)
    expect(raw.includes(0x1b)).toBe(false)
    expect(raw.includes(Buffer.from('\u2028'))).toBe(false)
    expect(raw.includes(Buffer.from('\u2029'))).toBe(false)
    expect(raw.includes(Buffer.from('\u0085'))).toBe(false)
    expect(raw.includes(Buffer.from('\u009b'))).toBe(false)
    const [first] = parsedLines(file)
    expect(first!.result).toBe(hostile)
    expect((first!.details as Record<string, unknown>)[hostile]).toBe(hostile)
    expect(await verifyAuditLog(file, key)).toMatchObject({ ok: true, lines: 2 })
  })

  it('never throws from log(), whatever it is given', () => {
    const audit = createAuditLogger({ file: join(dir, 'audit.log'), key: newKey() })
    const cyclic: Record<string, unknown> = { a: 1 }
    cyclic.self = cyclic
    expect(() => audit.log(sampleEvent({ details: cyclic }))).not.toThrow()
    expect(() => audit.log(sampleEvent({ details: { n: 10n } as unknown as Record<string, unknown> }))).not.toThrow()
    expect(() => audit.log(undefined as unknown as SecurityEvent)).not.toThrow()
    return audit.close()
  })

  it('returns from log() before the line is on disk, and flush() resolves once it is', async () => {
    const file = join(dir, 'audit.log')
    const audit = createAuditLogger({ file, key: newKey() })
    for (let i = 0; i < 1000; i++) audit.log(sampleEvent({ request_id: `r${i}` }))
    expect(audit.stats().written).toBeLessThan(1000)
    await audit.flush()
    expect(fileLines(file)).toHaveLength(1000)
    expect(audit.stats()).toMatchObject({ written: 1000, pending: 0 })
    await audit.close()
  })
})

describe('createAuditLogger: the hash chain across restarts and size rotation', () => {
  it('resumes the chain from the last line of the existing file after a restart', async () => {
    const file = join(dir, 'audit.log')
    const key = newKey()
    const first = createAuditLogger({ file, key })
    for (let i = 0; i < 3; i++) first.log(sampleEvent({ request_id: `a${i}` }))
    await first.close()
    const second = createAuditLogger({ file, key })
    for (let i = 0; i < 2; i++) second.log(sampleEvent({ request_id: `b${i}` }))
    await second.close()
    const lines = parsedLines(file)
    expect(lines.map((l) => l.seq)).toEqual([1, 2, 3, 4, 5])
    expect(lines[3]).not.toHaveProperty('prev_hash')
    const result = await verifyAuditLog(file, key)
    expect(result).toMatchObject({ ok: true, lines: 5, firstSeq: 1, lastSeq: 5, genesis: true })
    expect(result.lastHash).toBe(second.head().hash)
  })

  it('rotates by size; every file verifies alone (anchored) and the set verifies as one chain', async () => {
    const file = join(dir, 'audit.log')
    const key = newKey()
    const audit = createAuditLogger({ file, key, maxSize: 2000 })
    for (let i = 0; i < 30; i++) audit.log(sampleEvent({ request_id: `r${i}` }))
    await audit.close()
    const files = listAuditFiles(file)
    expect(files.length).toBeGreaterThan(3)
    expect(files[files.length - 1]).toBe(file)
    expect(audit.stats().rotations).toBe(files.length - 1)
    for (const f of files) {
      expect(statSync(f).size).toBeLessThanOrEqual(2000)
      const alone = await verifyAuditLog(f, key)
      expect(alone.ok).toBe(true)
    }
    const all = await verifyAuditLog(files, key)
    expect(all).toMatchObject({ ok: true, lines: 30, firstSeq: 1, lastSeq: 30, genesis: true })
    const firstOfSecond = parsedLines(files[1]!)[0]!
    const lastOfFirst = parsedLines(files[0]!).pop()!
    expect(firstOfSecond.prev_hash).toBe(lastOfFirst.hash)
    expect(files[0]).toMatch(/audit\.\d{4}-\d{2}-\d{2}\.1\.log$/)
  })

  it('detects a missing middle file when the set is verified', async () => {
    const file = join(dir, 'audit.log')
    const key = newKey()
    const audit = createAuditLogger({ file, key, maxSize: 1500 })
    for (let i = 0; i < 20; i++) audit.log(sampleEvent({ request_id: `r${i}` }))
    await audit.close()
    const files = listAuditFiles(file)
    const result = await verifyAuditLog([files[0]!, ...files.slice(2)], key)
    expect(result.ok).toBe(false)
    expect(result.failure).toMatchObject({ file: files[2], line: 1, problem: 'broken_link' })
  })
})

describe('createAuditLogger: daily rotation', () => {
  let clock: FakeClock | undefined
  afterEach(() => clock?.restore())

  it('rotates when the UTC day changes, naming the old file by its day', async () => {
    clock = fakeClock({ now: new Date('2026-02-19T23:59:00.000Z'), timers: false })
    const file = join(dir, 'audit.log')
    const key = newKey()
    const audit = createAuditLogger({ file, key })
    audit.log(sampleEvent({ request_id: 'day1-a' }))
    audit.log(sampleEvent({ request_id: 'day1-b' }))
    await audit.flush()
    clock.set(new Date('2026-02-20T00:00:05.000Z'))
    audit.log(sampleEvent({ request_id: 'day2-a' }))
    await audit.close()
    const rotated = join(dir, 'audit.2026-02-19.1.log')
    expect(parsedLines(rotated).map((l) => l.request_id)).toEqual(['day1-a', 'day1-b'])
    expect(parsedLines(file).map((l) => l.request_id)).toEqual(['day2-a'])
    expect(await verifyAuditLog([rotated, file], key)).toMatchObject({ ok: true, lines: 3 })
  })

  it('does not rotate on a day change when daily is false', async () => {
    clock = fakeClock({ now: new Date('2026-02-19T23:59:00.000Z') })
    const file = join(dir, 'audit.log')
    const audit = createAuditLogger({ file, key: newKey(), daily: false })
    audit.log(sampleEvent())
    await audit.flush()
    clock.set(new Date('2026-02-21T00:00:00.000Z'))
    audit.log(sampleEvent())
    await audit.close()
    expect(readdirSync(dir)).toEqual(['audit.log'])
    expect(fileLines(file)).toHaveLength(2)
  })
})

describe('createAuditLogger: restart from a missing, foreign or damaged active file', () => {
  it('continues from the newest rotated file when the active file is gone', async () => {
    const file = join(dir, 'audit.log')
    const key = newKey()
    const first = createAuditLogger({ file, key })
    first.log(sampleEvent())
    first.log(sampleEvent())
    await first.close()
    const archived = join(dir, 'audit.2026-01-01.1.log')
    renameSync(file, archived)
    const second = createAuditLogger({ file, key })
    second.log(sampleEvent())
    await second.close()
    const [line] = parsedLines(file)
    expect(line).toMatchObject({ seq: 3, prev_hash: parsedLines(archived)[1]!.hash })
    expect(await verifyAuditLog([archived, file], key)).toMatchObject({ ok: true, lines: 3 })
  })

  it('moves a file whose last line does not verify under the key aside and starts an anchored file', async () => {
    const file = join(dir, 'audit.log')
    const oldKey = newKey()
    const newKeyValue = newKey()
    const first = createAuditLogger({ file, key: oldKey })
    first.log(sampleEvent())
    first.log(sampleEvent())
    await first.close()
    const logger = recordingLogger()
    const second = createAuditLogger({ file, key: newKeyValue, logger })
    second.log(sampleEvent())
    await second.close()
    const aside = readdirSync(dir).filter((n) => n !== 'audit.log')
    expect(aside).toHaveLength(1)
    expect(logger.calls.some((c) => c.level === 'error' && /does not verify with the configured key/.test(c.message))).toBe(true)
    expect(await verifyAuditLog(join(dir, aside[0]!), oldKey)).toMatchObject({ ok: true, lines: 2 })
    expect(await verifyAuditLog(file, newKeyValue)).toMatchObject({ ok: true, lines: 1, firstSeq: 3, genesis: false })
  })

  it('moves a file with a cut-off last line aside, and verify reports that line', async () => {
    const file = join(dir, 'audit.log')
    const key = newKey()
    const first = createAuditLogger({ file, key })
    first.log(sampleEvent())
    first.log(sampleEvent())
    await first.close()
    appendFileSync(file, '{"timestamp":"2026-02-19T23:00:00.000Z","event_ty')
    const second = createAuditLogger({ file, key, logger: recordingLogger() })
    second.log(sampleEvent())
    await second.close()
    const aside = join(dir, readdirSync(dir).find((n) => n !== 'audit.log')!)
    expect(await verifyAuditLog(aside, key)).toMatchObject({ ok: false, failure: { line: 3, problem: 'incomplete' } })
    const intact = JSON.parse(fileLines(aside)[1]!) as { hash: string }
    expect(parsedLines(file)[0]).toMatchObject({ seq: 3, prev_hash: intact.hash })
    expect(await verifyAuditLog([aside], key)).toMatchObject({ lines: 2 })
  })

  it('moves a foreign file aside instead of appending to it', async () => {
    const file = join(dir, 'audit.log')
    writeFileSync(file, 'plain text log line\n')
    const key = newKey()
    const audit = createAuditLogger({ file, key, logger: recordingLogger() })
    audit.log(sampleEvent())
    await audit.close()
    expect(await verifyAuditLog(file, key)).toMatchObject({ ok: true, lines: 1, genesis: true })
  })
})
