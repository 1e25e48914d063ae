import { readFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { listAuditFiles, verifyAuditLog } from '@gatehouse/audit-log'
import { startHarness } from './helpers'

/** Send `n` pipelined requests on one connection; resolves with the status of every response. */
function pipelined(port: number, n: number, request: string): Promise<Map<string, number>> {
  return new Promise((resolve, reject) => {
    const statuses = new Map<string, number>()
    let seen = 0
    let tail = ''
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(request.repeat(n)))
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      const text = tail + chunk
      const re = /HTTP\/1\.1 (\d{3}) /g
      let m: RegExpExecArray | null
      let last = 0
      while ((m = re.exec(text))) {
        statuses.set(m[1]!, (statuses.get(m[1]!) ?? 0) + 1)
        seen++
        last = re.lastIndex
      }
      tail = text.slice(Math.max(last, text.length - 16))
      if (seen === n) socket.end()
    })
    socket.on('error', reject)
    socket.on('close', () => (seen === n ? resolve(statuses) : reject(new Error(`connection closed after ${seen} of ${n} responses`))))
  })
}

describe('the audit log under a flood of refused requests', () => {
  it('adds fewer than 1,000 lines for 100,000 refusals from one address, and its chain verifies', async () => {
    const h = await startHarness()
    try {
      const port = Number(new URL(h.url).port)
      const request = `GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`
      const sockets = 8
      const results = await Promise.all(Array.from({ length: sockets }, () => pipelined(port, 100_000 / sockets, request)))
      const total = new Map<string, number>()
      for (const r of results) for (const [k, v] of r) total.set(k, (total.get(k) ?? 0) + v)
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
