import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { hostname, networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { deriveFingerprint } from '@gatehouse/device-fingerprint'
import { createGateway } from '@gatehouse/server'
import { ensureBuilt, runCli } from './cli-helpers'
import { openaiBody, startHarness, type Harness } from './helpers'

beforeAll(() => ensureBuilt())

const fingerprintOf = async (url: string, h: Harness): Promise<string> => {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${h.key}`, 'content-type': 'application/json' },
    body: JSON.stringify(openaiBody()),
  })
  expect(res.status).toBe(200)
  expect(res.headers.get('x-device-fingerprint')).toBeNull()
  return String(h.upstream.requests.at(-1)?.headers['x-device-fingerprint'])
}

describe('the device fingerprint the gateway sends upstream', () => {
  it('comes from a 0600 per-install secret, not from the host, survives a restart, and changes with gatehouse fingerprint rotate', async () => {
    const h = await startHarness()
    const more: Array<{ close: (ms?: number) => Promise<void> }> = []
    try {
      const authDir = h.gateway.config.auth.dir
      const file = join(authDir, 'device-fingerprint.json')
      const { secret } = JSON.parse(readFileSync(file, 'utf8')) as { secret: string }
      const first = await fingerprintOf(h.url, h)
      expect(first).toBe(deriveFingerprint(Buffer.from(secret, 'hex'), 'gatehouse'))
      const macs = Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((a) => a.mac))
      for (const mac of macs) expect(first).not.toBe(createHash('sha256').update(`${mac}${hostname()}gatehouse`).digest('hex'))

      // A restart on the same auth dir sends the same fingerprint.
      const again = createGateway(h.gateway.config, { logger: { error() {}, warn() {}, info() {}, debug() {} }, cwd: h.dir })
      more.push(again)
      const { url } = await again.listen()
      expect(await fingerprintOf(url, h)).toBe(first)

      writeFileSync(join(h.dir, 'rotate.yaml'), `auth: { dir: ${JSON.stringify(authDir)} }\n`)
      const run = await runCli(['fingerprint', 'rotate', '--config', 'rotate.yaml'], { cwd: h.dir })
      expect(run).toMatchObject({ code: 0, stdout: 'device fingerprint rotated: restart the gateway to send the new one\n' })
      expect(run.stdout + run.stderr).not.toContain(first)
      const rotated = createGateway(h.gateway.config, { logger: { error() {}, warn() {}, info() {}, debug() {} }, cwd: h.dir })
      more.push(rotated)
      const r = await rotated.listen()
      const next = await fingerprintOf(r.url, h)
      expect(next).toMatch(/^[0-9a-f]{64}$/)
      expect(next).not.toBe(first)
    } finally {
      for (const g of more) await g.close(1000)
      await h.close()
    }
  })
})
