import { generateKeyPairSync, createHmac } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  createAuditLogger,
  findCheckpoints,
  verifyAuditLog,
  type AuditLogOptions,
} from '@gatehouse/audit-log'
import { lineVerifies, parseChainedLine, sealLine } from '../src/chain'
import { fileLines, newKey, sampleEvent } from './helpers'
import { SyslogReceiver, syslogSink } from './receivers'
import { fakeClock, tempDir, type FakeClock } from '@gatehouse/testing'

jest.setTimeout(15_000)

let dir: string
let cleanup: () => void
let file: string
let shipped: string
let key: string
let clock: FakeClock | undefined

beforeEach(() => {
  ;({ dir, cleanup } = tempDir())
  file = join(dir, 'audit.log')
  shipped = join(dir, 'collector.log')
  key = newKey()
})
afterEach(() => {
  clock?.restore()
  cleanup()
})

const rewrite = (lines: string[]): void => writeFileSync(file, `${lines.join('\n')}\n`)

/** 40 events with a checkpoint after each 10 (checkpoint() by hand, as the interval would) and at close. */
async function writeLog(extra: Partial<AuditLogOptions> = {}): Promise<string[]> {
  const audit = createAuditLogger({ file, key, checkpoints: { enabled: true, interval: 0 }, ...extra })
  for (let i = 1; i <= 40; i++) {
    audit.log(sampleEvent({ request_id: `req-${i}`, details: { n: i } }))
    if (i % 10 === 0) {
      await audit.flush()
      audit.checkpoint()
    }
  }
  await audit.close()
  const lines = fileLines(file)
  // What a collector kept: every line shipped (here: copied before any tampering).
  writeFileSync(shipped, `${lines.join('\n')}\n`)
  return lines
}

describe('signed checkpoints', () => {
  it('are chained lines naming the seq and hash before them, HMAC-signed under the audit key', async () => {
    const lines = await writeLog()
    expect(lines).toHaveLength(44)
    const cpLines = lines.filter((l) => l.includes('"checkpoint":'))
    expect(cpLines).toHaveLength(4)
    const last = JSON.parse(lines[43]!) as {
      timestamp: string
      checkpoint: Record<string, unknown>
      seq: number
    }
    const before = JSON.parse(lines[42]!) as { seq: number; hash: string }
    expect(last.seq).toBe(44)
    expect(last.checkpoint).toEqual({
      seq: 43,
      hash: before.hash,
      time: last.timestamp,
      alg: 'hmac-sha256',
      sig: expect.any(String),
    })
    const payload = `gatehouse-audit-checkpoint/1\n\n43\n${before.hash}\n${last.timestamp}`
    expect(last.checkpoint.sig).toBe(createHmac('sha256', key).update(payload).digest('base64url'))
    expect(findCheckpoints(lines.join('\n')).map((f) => f.checkpoint.seq)).toEqual([10, 21, 32, 43])
    expect((await verifyAuditLog(file, key)).ok).toBe(true) // checkpoints are ordinary links of the chain
  })

  it('passes an intact log against the shipped checkpoints', async () => {
    await writeLog()
    const result = await verifyAuditLog(file, key, { checkpoints: shipped })
    expect(result).toMatchObject({ ok: true, lines: 44, checkpoints: { count: 4, newestSeq: 44 } })
  })

  it('flags a log whose last 10 lines were cut', async () => {
    const lines = await writeLog()
    rewrite(lines.slice(0, -10))
    expect((await verifyAuditLog(file, key)).ok).toBe(true) // the chain alone cannot tell
    const result = await verifyAuditLog(file, key, { checkpoints: shipped })
    expect(result.failure).toMatchObject({ file, line: 35, problem: 'truncated' })
    expect(result.failure!.reason).toMatch(
      /ends at seq 34 but a checkpoint shipped at .* vouches for seq 44: 10 line\(s\) were cut/,
    )
  })

  it('flags a log whose closing checkpoint alone was cut', async () => {
    const lines = await writeLog()
    rewrite(lines.slice(0, -1))
    expect((await verifyAuditLog(file, key, { checkpoints: shipped })).failure).toMatchObject({
      problem: 'truncated',
    })
  })

  it('flags a log whose last 10 lines were replaced, even re-chained with the audit key', async () => {
    const lines = await writeLog()
    const kept = lines.slice(0, -10)
    let prev = parseChainedLine(kept[kept.length - 1]!)!
    const forged = [...kept]
    for (let seq = prev.seq + 1; seq <= 44; seq++) {
      const body = JSON.stringify({
        timestamp: '2026-02-19T23:00:00.000Z',
        event_type: 'auth_success',
        request_id: `fake-${seq}`,
      })
      const { line } = sealLine(Buffer.from(key), body, seq, prev.hash, false)
      forged.push(line)
      prev = parseChainedLine(line)!
    }
    rewrite(forged)
    expect((await verifyAuditLog(file, key)).ok).toBe(true) // an insider with the key made a valid chain
    const result = await verifyAuditLog(file, key, { checkpoints: shipped })
    expect(result.failure).toMatchObject({ line: 43, seq: 43, problem: 'replaced' }) // the first line a checkpoint vouches for
    // replacing without the key is caught by the chain itself
    const crude = lines.slice(0, -10).concat(lines.slice(-10).map((l) => l.replace('req-', 'xxx-')))
    rewrite(crude)
    expect((await verifyAuditLog(file, key, { checkpoints: shipped })).failure).toMatchObject({
      problem: 'edited',
    })
  })
})

describe('signed checkpoints: forged, Ed25519-signed, on an interval, shipped', () => {
  it('refuses forged or missing checkpoints', async () => {
    await writeLog()
    const text = fileLines(shipped)
      .map((l) => l.replace(/"checkpoint":\{"seq":43,/, '"checkpoint":{"seq":42,'))
      .join('\n')
    writeFileSync(shipped, text)
    const forged = await verifyAuditLog(file, key, { checkpoints: shipped })
    expect(forged.failure).toMatchObject({ file: shipped, line: 44, problem: 'checkpoint_invalid' })
    writeFileSync(shipped, 'nothing here\n')
    expect((await verifyAuditLog(file, key, { checkpoints: shipped })).failure).toMatchObject({
      problem: 'checkpoint_invalid',
      reason: expect.stringMatching(/no checkpoint found/),
    })
    await expect(verifyAuditLog(file, key, { checkpoints: join(dir, 'absent.log') })).rejects.toMatchObject({
      code: 'GH_AUDIT_UNREADABLE',
    })
  })

  it('signs with Ed25519 when a signing key is configured, checked with the public key', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519')
    await writeLog({
      checkpoints: {
        enabled: true,
        interval: 0,
        signingKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        logId: 'gw-1',
      },
    })
    const bare = findCheckpoints(fileLines(shipped).join('\n')).map((f) => f.checkpoint)
    expect(bare[0]).toMatchObject({ log: 'gw-1', alg: 'ed25519' })
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString()
    expect(
      await verifyAuditLog(file, key, { checkpoints: bare, checkpointPublicKey: pem, logId: 'gw-1' }),
    ).toMatchObject({ ok: true, checkpoints: { count: 4, newestSeq: 43 } })
    expect((await verifyAuditLog(file, key, { checkpoints: bare, logId: 'gw-1' })).failure?.reason).toMatch(
      /pass the public key/,
    )
    expect(
      (await verifyAuditLog(file, key, { checkpoints: bare, checkpointPublicKey: pem, logId: 'gw-2' }))
        .failure?.reason,
    ).toMatch(/no checkpoint of log "gw-2"/)
    const other = generateKeyPairSync('ed25519').publicKey
    expect(
      (await verifyAuditLog(file, key, { checkpoints: bare, checkpointPublicKey: other })).failure,
    ).toMatchObject({ problem: 'checkpoint_invalid' })
  })

  it('writes one at each interval, and none when nothing was written since the last', async () => {
    clock = fakeClock()
    const audit = createAuditLogger({ file, key, checkpoints: { enabled: true, interval: 30 } })
    audit.log(sampleEvent())
    await audit.flush()
    await clock.advance(29)
    await audit.flush()
    expect(fileLines(file)).toHaveLength(1)
    await clock.advance(1)
    await clock.until(() => fileLines(file).some((l) => l.includes('"checkpoint"')), 3000, 'the checkpoint')
    await clock.advance(150) // several more intervals with nothing new
    await audit.flush()
    await audit.close()
    const lines = fileLines(file)
    expect(lines).toHaveLength(2)
    const cp = parseChainedLine(lines[1]!)!
    expect(lineVerifies(Buffer.from(key), parseChainedLine(lines[0]!)!.hash, cp)).toBe(true)
  })

  it('reach the syslog receiver, whose export proves the local log end to end', async () => {
    const receiver = new SyslogReceiver()
    const port = await receiver.start()
    try {
      const audit = createAuditLogger({
        file,
        key,
        sinks: [syslogSink(port)],
      })
      for (let i = 1; i <= 25; i++) audit.log(sampleEvent({ request_id: `req-${i}` }))
      await audit.close()
    } finally {
      await receiver.stop()
    }
    // The collector's file: one syslog message a line, as rsyslog would store it.
    writeFileSync(shipped, receiver.messages.map((m) => m.raw).join('\n'))
    expect(await verifyAuditLog(file, key, { checkpoints: shipped })).toMatchObject({
      ok: true,
      checkpoints: { count: 1, newestSeq: 26 },
    })
    rewrite(fileLines(file).slice(0, -10))
    expect((await verifyAuditLog(file, key, { checkpoints: shipped })).failure).toMatchObject({
      problem: 'truncated',
    })
  })
})
