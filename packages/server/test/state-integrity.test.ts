import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { listAuditFiles, verifyAuditLog } from '@gatehouse/audit-log'
import type { GatehouseConfig } from '@gatehouse/server'
import { startHarness, type Harness } from './helpers'

/**
 * State the gateway keeps on disk stays the gateway's: an edited quota file does not give a tenant
 * its month back, and the audit log rotates and expires old files without breaking its chain.
 */

const chat = (h: Harness, key = h.key): Promise<Response> =>
  fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] }),
  })

describe('the quota file, integrity-protected by the gateway', () => {
  it('refuses a quota.json edited outside the gateway: the month counts as spent, with a security_violation', async () => {
    const keep = mkdtempSync(join(tmpdir(), 'gh-quota-'))
    const tweak = (c: GatehouseConfig): void => {
      c.auth.dir = join(keep, 'auths')
      c.providers.openai!.quota = { limit: 50_000, reset: 'monthly' }
    }
    try {
      const first = await startHarness(tweak)
      expect((await chat(first)).status).toBe(200)
      await first.close()
      const file = join(keep, 'auths', 'quota.json')
      const written = JSON.parse(readFileSync(file, 'utf8')) as { quotas: Record<string, { used: number }>; hmac?: string }
      expect(typeof written.hmac).toBe('string')
      const [name] = Object.keys(written.quotas)
      expect(written.quotas[name!]!.used).toBeGreaterThan(0)
      // A tenant (or anyone with the file) lowers what was spent, keeping the old HMAC.
      written.quotas[name!]!.used = 0
      writeFileSync(file, JSON.stringify(written))

      const second = await startHarness(tweak)
      try {
        const refused = await chat(second)
        expect(refused.status).toBe(429)
        const body = (await refused.json()) as { error: { type?: string; message: string } }
        expect(body.error.message).toMatch(/quota/i)
        expect(second.events).toEqual(expect.arrayContaining([expect.objectContaining({ event_type: 'security_violation', result: 'quota_file_refused' })]))
        // The refused copy is kept aside for the operator, never silently replaced.
        expect(readdirSync(join(keep, 'auths')).some((f) => f.startsWith('quota.json.tampered-'))).toBe(true)
        expect(second.logs.join('\n')).toContain('GH_RL_QUOTA_FILE_TAMPERED')
      } finally {
        await second.close()
      }
    } finally {
      rmSync(keep, { recursive: true, force: true })
    }
  })
})

describe('the client key file, integrity-protected by the gateway', () => {
  it('refuses a client-keys.json edited outside the gateway: the running gateway authenticates no key (401, /readyz 503), and a restart refuses the file', async () => {
    const h = await startHarness()
    try {
      const narrow = await h.gateway.keyStore.create({ name: 'narrow', providers: ['claude'] })
      expect((await chat(h, narrow.key)).status).toBe(403)
      expect((await chat(h)).status).toBe(200)
      // Someone with the file widens the narrow key to every provider, keeping the MAC.
      const file = join(h.gateway.config.auth.dir, 'client-keys.json')
      const body = JSON.parse(readFileSync(file, 'utf8')) as { keys: Array<Record<string, unknown>>; mac?: string }
      expect(body.mac).toMatch(/^[0-9a-f]{64}$/)
      for (const k of body.keys) if (k.id === narrow.record.id) delete k.providers
      writeFileSync(file, JSON.stringify(body, null, 2))
      // Fails closed: no key at all, the widened one included, and the gateway says it is not ready.
      expect((await chat(h, narrow.key)).status).toBe(401)
      expect((await chat(h)).status).toBe(401)
      expect((await fetch(`${h.url}/readyz`)).status).toBe(503)
      expect(h.logs.join('\n')).toMatch(/changed outside Gatehouse/)
      // A new gateway on the same directory does not start on it.
      const dir = h.gateway.config.auth.dir
      await expect(startHarness((c) => void (c.auth.dir = dir))).rejects.toMatchObject({ code: 'GH_AUTH_KEYFILE_TAMPERED' })
    } finally {
      await h.close()
    }
  })
})

describe('the audit log under logging.audit rotation and retention', () => {
  it('rotates by size, keeps the newest files, and the retained set verifies as the whole log', async () => {
    const h = await startHarness((c) => {
      c.logging.audit.max_size = '4kb'
      c.logging.audit.retention = { max_files: 2 }
      c.logging.audit.aggregate_interval = 0
    })
    try {
      // Refusals (a wrong key) are audit lines; enough of them for several rotations.
      for (let i = 0; i < 60; i++) expect((await chat(h, `gate_live_${'x'.repeat(10)}${i}`)).status).toBe(401)
      await h.gateway.audit!.flush()
      const file = h.gateway.config.logging.audit.file
      const files = listAuditFiles(file)
      // The active file and at most two rotated ones.
      expect(files.length).toBeGreaterThan(1)
      expect(files.length).toBeLessThanOrEqual(3)
      const key = readFileSync(join(h.gateway.config.auth.dir, '.audit-key'), 'utf8').trim()
      const result = await verifyAuditLog(files, key, { whole: true })
      expect(result.ok).toBe(true)
      expect(result.firstSeq).toBeGreaterThan(1)
    } finally {
      await h.close()
    }
  })
})
