import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { generateCertificate, MockUpstream } from '@gatehouse/testing'
import { ensureBuilt, runCli, startCli } from './cli-helpers'

/**
 * logging.audit.sinks and .checkpoints through the gateway: every audit line reaches an HTTPS
 * collector as it is written, and `gatehouse audit verify --checkpoints` proves the local log
 * against what the collector received (a cut tail fails).
 */

beforeAll(() => ensureBuilt())

describe('audit lines shipped to an HTTPS collector, verified against its checkpoints', () => {
  it('ships every line; audit verify --checkpoints passes on the log and fails once its last 10 lines are cut', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-ship-'))
    const cert = generateCertificate({ altNames: ['127.0.0.1'] })
    writeFileSync(join(dir, 'collector-ca.pem'), cert.cert)
    const received: string[] = []
    const collector = https.createServer({ cert: cert.cert, key: cert.key }, (req, res) => {
      let body = ''
      req.setEncoding('utf8')
      req.on('data', (d: string) => (body += d))
      req.on('end', () => {
        received.push(...body.split('\n').filter(Boolean))
        res.end('{}')
      })
    })
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r))
    const upstream = await MockUpstream.start()
    const providerKey = `sk-proj-${randomBytes(30).toString('base64url')}`
    try {
      writeFileSync(
        join(dir, 'c.yaml'),
        `server: { port: 0 }
metrics: { enabled: false }
logging:
  audit:
    sinks:
      - { type: https, url: "https://127.0.0.1:${(collector.address() as AddressInfo).port}/audit", ca_file: collector-ca.pem }
    checkpoints: { interval: 1s }
providers:
  openai: { base_url: "${upstream.url}", api_key: "${providerKey}" }
`,
      )
      const key = (await runCli(['keys', 'create', '--name', 'shipping', '--config', 'c.yaml'], { cwd: dir })).stdout.trim()
      const gw = await startCli(['--config', 'c.yaml'], { cwd: dir })
      for (let i = 0; i < 12; i++) {
        const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${i % 3 ? key : 'gate_live_wrong'}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }) })
        await res.text()
      }
      gw.child.kill('SIGTERM')
      expect(await gw.exited).toBe(0)
      // Every line of the local log reached the collector, in order (the closing checkpoint included).
      const local = readFileSync(join(dir, 'logs', 'audit.log'), 'utf8').split('\n').filter(Boolean)
      expect(received).toEqual(local)
      expect(local.some((l) => l.includes('"checkpoint"'))).toBe(true)
      for (const secret of [key, providerKey]) expect(received.join('\n')).not.toContain(secret)
      writeFileSync(join(dir, 'collected.ndjson'), `${received.join('\n')}\n`)

      const intact = await runCli(['audit', 'verify', 'logs/audit.log', '--checkpoints', 'collected.ndjson', '--config', 'c.yaml'], { cwd: dir })
      expect(intact.stdout).toMatch(/^audit log intact: .*; matches \d+ checkpoint\(s\), the newest at seq \d+$/m)
      expect(intact.code).toBe(0)

      // The last 10 lines cut: the chain of what is left still holds, but the checkpoints say it is short.
      writeFileSync(join(dir, 'logs', 'audit.log'), `${local.slice(0, -10).join('\n')}\n`)
      const plain = await runCli(['audit', 'verify', 'logs/audit.log', '--config', 'c.yaml'], { cwd: dir })
      expect(plain.code).toBe(0)
      const cut = await runCli(['audit', 'verify', 'logs/audit.log', '--checkpoints', 'collected.ndjson', '--config', 'c.yaml'], { cwd: dir })
      expect(cut.stdout).toMatch(/^audit log TAMPERED: .*10 line\(s\) were cut from the end/m)
      expect(cut.code).toBe(1)
    } finally {
      await new Promise((r) => collector.close(r))
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})
