import { join } from 'node:path'
import { verifyAuditLog } from '@gatehouse/audit-log'
import { fileLines, newKey, runChild } from './helpers'
import { sleep, tempDir } from '@gatehouse/testing'

let dir: string
let cleanup: () => void
beforeEach(() => ({ dir, cleanup } = tempDir()))
afterEach(() => cleanup())

describe('SIGTERM with events in flight', () => {
  it('loses none of N events logged just before the signal: the handler awaits close()', async () => {
    const file = join(dir, 'audit.log')
    const key = newKey()
    const n = 20_000
    const child = runChild(['burst', file, key, String(n)])
    await child.waitForLine(/^logged$/)
    child.kill('SIGTERM')
    const { code, stdout } = await child.exited
    expect(stdout).toContain(`closed ${n} dropped 0`)
    expect(code).toBe(0)
    expect(fileLines(file)).toHaveLength(n)
    expect(await verifyAuditLog(file, key)).toMatchObject({ ok: true, lines: n, lastSeq: n })
  })

  it('loses none while events keep arriving when the signal comes', async () => {
    const file = join(dir, 'audit.log')
    const key = newKey()
    const child = runChild(['stream', file, key])
    await child.waitForLine(/^started$/)
    await sleep(150) // real time: the events come from a child process, whose clock cannot be faked
    child.kill('SIGTERM')
    const { code, stdout } = await child.exited
    expect(code).toBe(0)
    expect(stdout).toMatch(/closed \d+ dropped 0/)
    const logged = Number(/closed (\d+)/.exec(stdout)?.[1])
    expect(logged).toBeGreaterThan(25)
    expect(fileLines(file)).toHaveLength(logged)
    expect(await verifyAuditLog(file, key)).toMatchObject({ ok: true, lines: logged })
  })
})
