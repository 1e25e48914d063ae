import { join } from 'node:path'
import type { AuditLogger } from '@gatehouse/audit-log'
import { newKey, sampleEvent } from './helpers'
import { testCertificate } from './receivers'
import { tempDir } from '@gatehouse/testing'

/**
 * The setup the sink tests share: a fresh directory, audit file and key for each test (handed to
 * `onEach`), every tracked audit logger closed after it, and the test certificate made once,
 * before the timed tests.
 */
export function sinkTestbed(onEach: (file: string, key: string) => void): { track: (a: AuditLogger) => AuditLogger } {
  let cleanup: () => void = () => undefined
  const open: AuditLogger[] = []
  beforeAll(() => {
    testCertificate() // the RSA key takes a moment: make it once, before the timed tests
  })
  beforeEach(() => {
    const made = tempDir()
    cleanup = made.cleanup
    onEach(join(made.dir, 'audit.log'), newKey())
  })
  afterEach(async () => {
    await Promise.all(open.splice(0).map((a) => a.close().catch(() => undefined)))
    cleanup()
  })
  return { track: (a) => (open.push(a), a) }
}

/** Log events `req-from` … `req-to`, each with its number in `details.n`. */
export const logN = (audit: AuditLogger, from: number, to: number): void => {
  for (let i = from; i <= to; i++) audit.log(sampleEvent({ request_id: `req-${i}`, details: { n: i } }))
}
