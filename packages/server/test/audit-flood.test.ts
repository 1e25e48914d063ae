import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { listAuditFiles, verifyAuditLog } from '@gatehouse/audit-log'
import { rawHttp } from '@gatehouse/testing'
import { startHarness } from './helpers'

/** Send `n` pipelined requests on one connection; resolves with the status of every response. */
async function pipelined(url: string, n: number, request: string): Promise<number[]> {
  return (await rawHttp(url, request.repeat(n), { answers: n, timeoutMs: 120_000 })).statuses
}

describe('the audit log under a flood of refused requests', () => {
  it('adds fewer than 1,000 lines for 100,000 refusals from one address, and its chain verifies', async () => {
    const h = await startHarness()
    try {
      const port = Number(new URL(h.url).port)
      const request = `GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`
      const sockets = 8
      const results = await Promise.all(Array.from({ length: sockets }, () => pipelined(h.url, 100_000 / sockets, request)))
      const total = new Map<string, number>()
      for (const r of results) for (const status of r) total.set(String(status), (total.get(String(status)) ?? 0) + 1)
      expect(Object.fromEntries(total)).toEqual({ 401: 100_000 })

      const auditFile = h.gateway.config.logging.audit.file
      const key = readFileSync(join(h.gateway.config.auth.dir, '.audit-key'), 'utf8').trim()
      await h.gateway.close(1000)
      const files = listAuditFiles(auditFile)
      const lines = files.flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean))
      expect(lines.length).toBeLessThan(1000)
      const parsed = lines.map((l) => JSON.parse(l) as { event_type: string; ip?: string; details?: { aggregated?: boolean; count?: number } })
      // Every refusal is accounted for: written in full, or counted in an aggregated line.
      const accounted = (type: string): number =>
        parsed.filter((l) => l.event_type === type).reduce((n, l) => n + (l.details?.aggregated ? l.details.count! : 1), 0)
      expect(accounted('auth_failure')).toBe(100_000)
      expect(accounted('provider_request')).toBe(100_000)
      expect(parsed.filter((l) => l.details?.aggregated).every((l) => l.ip === '127.0.0.1')).toBe(true)
      expect(await verifyAuditLog(files, key)).toMatchObject({ ok: true, lines: lines.length })
    } finally {
      await h.close()
    }
  }, 120_000)
})
