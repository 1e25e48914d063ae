import { readdirSync, rmSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { createAuditLogger, listAuditFiles, verifyAuditLog, type AuditLogOptions } from '@gatehouse/audit-log'
import { fileLines, newKey, parsedLines, sampleEvent } from './helpers'
import { fakeClock, recordingLogger, tempDir, type FakeClock } from '@gatehouse/testing'

let dir: string
let cleanup: () => void
let clock: FakeClock | undefined
beforeEach(() => ({ dir, cleanup } = tempDir()))
afterEach(() => {
  clock?.restore()
  cleanup()
})

/** Log `count` events in bursts of `burst` (one event-loop turn each), then close. */
async function writeLog(options: AuditLogOptions, count: number, burst = 25): Promise<ReturnType<typeof createAuditLogger>> {
  const audit = createAuditLogger(options)
  for (let i = 0; i < count; i++) {
    audit.log(sampleEvent({ request_id: `r${i}` }))
    if (i % burst === burst - 1) await audit.flush()
  }
  await audit.close()
  return audit
}

const retentionLines = (files: string[]): Array<Record<string, unknown>> =>
  files.flatMap((f) => parsedLines(f)).filter((l) => l.retention !== undefined)

describe('audit rotation with retention: under load', () => {
  it('keeps the newest maxFiles rotated files, and the kept set verifies as the whole log', async () => {
    const file = join(dir, 'audit.log')
    const key = newKey()
    const logger = recordingLogger()
    const audit = await writeLog({ file, key, maxSize: 4000, retention: { maxFiles: 3 }, logger }, 600)
    const files = listAuditFiles(file)
    expect(files).toHaveLength(4) // three rotated files and the active one
    const { rotations, expired, written } = audit.stats()
    expect(rotations).toBeGreaterThan(10)
    expect(expired).toBe(rotations - 3)
    const result = await verifyAuditLog(files, key, { whole: true })
    expect(result).toMatchObject({ ok: true, genesis: false, lastSeq: written })
    expect(result.retainedFrom).toBe(result.firstSeq! - 1)
    // every event that is kept is there once, in order, up to the last one logged
    const ids = files.flatMap((f) => parsedLines(f)).flatMap((l) => (l.request_id === undefined ? [] : [l.request_id]))
    expect(ids[ids.length - 1]).toBe('r599')
    expect(new Set(ids).size).toBe(ids.length)
    expect(logger.calls.filter((c) => c.message.includes('expired audit files deleted')).length).toBeGreaterThan(0)
  })

  it('writes a chained retention record naming where the deleted files ended before deleting them', async () => {
    const file = join(dir, 'audit.log')
    const key = newKey()
    await writeLog({ file, key, maxSize: 3000, retention: { maxFiles: 2 } }, 200)
    const files = listAuditFiles(file)
    const oldestKept = parsedLines(files[0]!)[0]!
    const records = retentionLines(files)
    expect(records.length).toBeGreaterThan(0)
    const newest = records[records.length - 1]!.retention as Record<string, unknown>
    expect(newest).toEqual({
      deleted: expect.any(Number),
      first: expect.stringMatching(/^audit\.\d{4}-\d{2}-\d{2}\.\d+\.log$/),
      last: expect.stringMatching(/^audit\.\d{4}-\d{2}-\d{2}\.\d+\.log$/),
      through_seq: (oldestKept.seq as number) - 1,
      through_hash: oldestKept.prev_hash,
    })
    expect(records[0]).not.toHaveProperty('event_type')
  })

  it('deletes only the oldest files, never one in the middle', async () => {
    const file = join(dir, 'audit.log')
    const key = newKey()
    await writeLog({ file, key, maxSize: 3000 }, 150)
    const before = listAuditFiles(file).slice(0, -1)
    expect(before.length).toBeGreaterThan(5)
    const foreign = ['other.2020-01-01.1.log', 'audit.log.bak', 'notes.txt']
    for (const name of foreign) writeFileSync(join(dir, name), 'not ours\n')
    await writeLog({ file, key, maxSize: 3000, retention: { maxFiles: 4 } }, 0) // retention applies at start
    const after = listAuditFiles(file).slice(0, -1)
    expect(after).toEqual(before.slice(-4))
    expect(readdirSync(dir)).toEqual(expect.arrayContaining(foreign)) // another log's files and others are not retention's
    expect(await verifyAuditLog(listAuditFiles(file), key, { whole: true })).toMatchObject({ ok: true, lastSeq: 151 })
  })

  it('keeps every rotated file without retention, as before', async () => {
    const file = join(dir, 'audit.log')
    const audit = await writeLog({ file, key: newKey(), maxSize: 3000 }, 150)
    expect(listAuditFiles(file)).toHaveLength(audit.stats().rotations + 1)
    expect(audit.stats().expired).toBe(0)
  })
})

describe('audit rotation with retention: verify over the kept set', () => {
  let file: string
  let key: string
  let files: string[]
  beforeEach(async () => {
    file = join(dir, 'audit.log')
    key = newKey()
    await writeLog({ file, key, maxSize: 3000, retention: { maxFiles: 4 } }, 250)
    files = listAuditFiles(file)
    expect(files).toHaveLength(5)
  })

  it('reports an edited line in a kept middle file', async () => {
    const middle = files[2]!
    const lines = fileLines(middle)
    lines[1] = lines[1]!.replace('"result":"invalid_token"', '"result":"ok"')
    writeFileSync(middle, `${lines.join('\n')}\n`)
    expect((await verifyAuditLog(files, key, { whole: true })).failure).toMatchObject({ file: middle, line: 2, problem: 'edited' })
  })

  it('reports a removed middle file', async () => {
    rmSync(files[2]!)
    const result = await verifyAuditLog(listAuditFiles(file), key, { whole: true })
    expect(result.failure).toMatchObject({ file: files[3], line: 1, problem: 'broken_link' })
  })

  it('reports the oldest kept file removed by anything but retention, with whole', async () => {
    rmSync(files[0]!)
    const rest = listAuditFiles(file)
    const result = await verifyAuditLog(rest, key, { whole: true })
    expect(result).toMatchObject({ ok: false, failure: { file: rest[0], line: 1, problem: 'missing_start' } })
    expect(result.failure!.reason).toMatch(/no retention record/)
    // without whole, the first file's anchor is taken as given (checking a part of a log)
    expect(await verifyAuditLog(rest, key)).toMatchObject({ ok: true, genesis: false })
  })

  it('does not accept a forged retention record', async () => {
    rmSync(files[0]!)
    const rest = listAuditFiles(file)
    const first = parsedLines(rest[0]!)[0]!
    const lines = fileLines(file)
    const seq = (JSON.parse(lines[lines.length - 1]!) as { seq: number }).seq + 1
    // Without the key no one can chain a record: its hash cannot be right.
    const forged = `{"timestamp":"2026-02-19T23:00:00.000Z","retention":{"deleted":1,"first":"x","last":"x","through_seq":${(first.seq as number) - 1},"through_hash":"${first.prev_hash as string}"},"seq":${seq},"hash":"${'0'.repeat(64)}"}`
    writeFileSync(file, `${lines.join('\n')}\n${forged}\n`)
    const result = await verifyAuditLog(rest, key, { whole: true })
    expect(result.failure).toMatchObject({ file, line: lines.length + 1, problem: 'edited' })
  })
})

describe('audit rotation by age (fake clock)', () => {
  it('rotates the active file once its first line is maxFileAge old', async () => {
    clock = fakeClock({ now: new Date('2026-03-01T10:00:00.000Z') })
    const file = join(dir, 'audit.log')
    const key = newKey()
    const audit = createAuditLogger({ file, key, maxFileAge: '1h', daily: false })
    audit.log(sampleEvent({ request_id: 'a' }))
    await audit.flush()
    clock.set(new Date('2026-03-01T10:59:00.000Z'))
    audit.log(sampleEvent({ request_id: 'b' }))
    await audit.flush()
    expect(audit.stats().rotations).toBe(0)
    clock.set(new Date('2026-03-01T11:00:00.000Z'))
    audit.log(sampleEvent({ request_id: 'c' }))
    await audit.flush()
    clock.set(new Date('2026-03-01T11:30:00.000Z'))
    audit.log(sampleEvent({ request_id: 'd' }))
    await audit.close()
    const rotated = join(dir, 'audit.2026-03-01.1.log')
    expect(readdirSync(dir).sort()).toEqual([basename(rotated), 'audit.log'])
    expect(parsedLines(rotated).map((l) => l.request_id)).toEqual(['a', 'b'])
    expect(parsedLines(file).map((l) => l.request_id)).toEqual(['c', 'd'])
    expect(await verifyAuditLog([rotated, file], key, { whole: true })).toMatchObject({ ok: true, lines: 4, genesis: true })
  })

  it('does not rotate an empty file, whatever its age', async () => {
    clock = fakeClock({ now: new Date('2026-03-01T10:00:00.000Z') })
    const file = join(dir, 'audit.log')
    const audit = createAuditLogger({ file, key: newKey(), maxFileAge: '1h', daily: false })
    clock.set(new Date('2026-03-01T15:00:00.000Z'))
    audit.log(sampleEvent())
    await audit.close()
    expect(readdirSync(dir)).toEqual(['audit.log'])
  })

  it('deletes rotated files older than retention.maxAge on its timer, even while nothing rotates', async () => {
    // From the real now: retention compares the fake clock with the rotated files' real mtimes.
    const start = Date.now()
    clock = fakeClock({ now: start })
    const file = join(dir, 'audit.log')
    const key = newKey()
    const audit = createAuditLogger({ file, key, maxSize: 3000, daily: false, retention: { maxAge: '1d' } })
    for (let i = 0; i < 60; i++) audit.log(sampleEvent({ request_id: `r${i}` }))
    await audit.flush()
    const rotated = listAuditFiles(file).length - 1
    expect(rotated).toBeGreaterThan(2)
    clock.set(start + 12 * 3_600_000)
    await clock.advance(3_600_000) // the hourly check: nothing is a day old yet
    await audit.flush()
    expect(listAuditFiles(file)).toHaveLength(rotated + 1)
    clock.set(start + 2 * 86_400_000)
    await clock.advance(3_600_000)
    await audit.flush()
    await audit.close()
    expect(listAuditFiles(file)).toEqual([file])
    expect(audit.stats().expired).toBe(rotated)
    const result = await verifyAuditLog([file], key, { whole: true })
    expect(result).toMatchObject({ ok: true, genesis: false, lastSeq: audit.head().seq })
    expect(retentionLines([file])).toHaveLength(1)
  })
})
