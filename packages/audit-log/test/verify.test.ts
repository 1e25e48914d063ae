import { readFileSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createAuditLogger, verifyAuditLog } from '@gatehouse/audit-log'
import { fileLines, newKey, sampleEvent } from './helpers'
import { tempDir } from '@gatehouse/testing'

let dir: string
let cleanup: () => void
let file: string
let key: string
let head: { seq: number; hash: string }

beforeEach(async () => {
  ;({ dir, cleanup } = tempDir())
  file = join(dir, 'audit.log')
  key = newKey()
  const audit = createAuditLogger({ file, key })
  for (let i = 1; i <= 10; i++) audit.log(sampleEvent({ request_id: `req-${i}`, details: { n: i } }))
  await audit.close()
  head = audit.head()
})
afterEach(() => cleanup())

const rewrite = (lines: string[]): void => writeFileSync(file, `${lines.join('\n')}\n`)

describe('verifyAuditLog', () => {
  it('accepts an intact log and reports its range', async () => {
    expect(await verifyAuditLog(file, key, { expect: head })).toEqual({
      ok: true,
      files: [file],
      lines: 10,
      firstSeq: 1,
      lastSeq: 10,
      lastHash: head.hash,
      genesis: true,
    })
  })

  it('finds an edited field, with its line number', async () => {
    const lines = fileLines(file)
    lines[4] = lines[4]!.replace('"ip":"192.168.1.100"', '"ip":"10.9.9.9"')
    rewrite(lines)
    const result = await verifyAuditLog(file, key)
    expect(result).toMatchObject({ ok: false, lines: 4, failure: { file, line: 5, seq: 5, problem: 'edited' } })
    expect(result.failure!.reason).toMatch(/^line 5 \(seq 5\) was changed/)
  })

  it('finds an edit that recomputes the hash without the key', async () => {
    const lines = fileLines(file)
    const obj = JSON.parse(lines[2]!) as Record<string, unknown>
    obj.result = 'ok'
    lines[2] = JSON.stringify(obj)
    rewrite(lines)
    expect((await verifyAuditLog(file, key)).failure).toMatchObject({ line: 3, problem: 'edited' })
  })

  it('finds a deleted line', async () => {
    const lines = fileLines(file)
    lines.splice(6, 1)
    rewrite(lines)
    const result = await verifyAuditLog(file, key)
    expect(result.failure).toMatchObject({ line: 7, seq: 8, problem: 'missing' })
    expect(result.failure!.reason).toMatch(/seq 8 where seq 7 belongs: 1 line\(s\) before it were removed/)
  })

  it('finds two swapped lines', async () => {
    const lines = fileLines(file)
    ;[lines[2], lines[3]] = [lines[3]!, lines[2]!]
    rewrite(lines)
    const result = await verifyAuditLog(file, key)
    expect(result.failure).toMatchObject({ line: 3, seq: 4, problem: 'reordered' })
    expect(result.failure!.reason).toMatch(/seq 3 is at line 4/)
  })

  it('finds a line moved further down', async () => {
    const lines = fileLines(file)
    const [moved] = lines.splice(1, 1)
    lines.push(moved!)
    rewrite(lines)
    expect((await verifyAuditLog(file, key)).failure).toMatchObject({ line: 2, problem: 'reordered' })
  })

  it('finds a duplicated line', async () => {
    const lines = fileLines(file)
    lines.splice(5, 0, lines[3]!)
    rewrite(lines)
    expect((await verifyAuditLog(file, key)).failure).toMatchObject({ line: 6, seq: 4, problem: 'reordered' })
  })

  it('finds a file truncated inside a line', async () => {
    const size = readFileSync(file).length
    truncateSync(file, size - 30)
    expect((await verifyAuditLog(file, key)).failure).toMatchObject({ line: 10, problem: 'incomplete' })
  })

  it('finds lines cut from the end when the last written line is known', async () => {
    rewrite(fileLines(file).slice(0, 7))
    expect((await verifyAuditLog(file, key)).ok).toBe(true)
    const result = await verifyAuditLog(file, key, { expect: head })
    expect(result.failure).toMatchObject({ line: 8, problem: 'truncated' })
    expect(result.failure!.reason).toMatch(/ends at seq 7 but seq 10 was written: 3 line\(s\)/)
  })

  it('finds a replaced last line when the last hash is known', async () => {
    const lines = fileLines(file)
    lines.pop()
    rewrite(lines)
    expect((await verifyAuditLog(file, key, { expect: { seq: 9, hash: head.hash } })).failure).toMatchObject({ line: 9, problem: 'edited' })
  })

  it('finds lines removed from the start', async () => {
    rewrite(fileLines(file).slice(2))
    expect((await verifyAuditLog(file, key)).failure).toMatchObject({ line: 1, seq: 3, problem: 'unanchored' })
  })

  it('finds a line that is not JSON, or lost its hash', async () => {
    const lines = fileLines(file)
    lines[1] = 'garbage'
    rewrite(lines)
    expect((await verifyAuditLog(file, key)).failure).toMatchObject({ line: 2, problem: 'malformed' })
    const again = fileLines(file)
    again[1] = again[2]!.replace(/,"hash":"[0-9a-f]{64}"\}$/, '}')
    rewrite(again)
    expect((await verifyAuditLog(file, key)).failure).toMatchObject({ line: 2, problem: 'malformed' })
  })

  it('fails every line under the wrong key', async () => {
    expect((await verifyAuditLog(file, newKey())).failure).toMatchObject({ line: 1, problem: 'edited' })
  })

  it('throws GH_AUDIT_UNREADABLE for a missing file and GH_AUDIT_INVALID_KEY for a short key', async () => {
    await expect(verifyAuditLog(join(dir, 'nope.log'), key)).rejects.toMatchObject({ code: 'GH_AUDIT_UNREADABLE' })
    await expect(verifyAuditLog(file, 'short')).rejects.toMatchObject({ code: 'GH_AUDIT_INVALID_KEY' })
  })

  it('accepts an empty file as an empty chain', async () => {
    writeFileSync(file, '')
    expect(await verifyAuditLog(file, key)).toMatchObject({ ok: true, lines: 0 })
  })
})
