import { copyFileSync, chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createCredentialVault } from '@gatehouse/credential-vault'
import { diagnose } from '@gatehouse/server'
import { listen, waitFor } from '@gatehouse/testing'
import { fakeKey, openaiBody, startHarness } from './helpers'

describe('a planted plaintext credential file (encryption on)', () => {
  it('is never used for a request, raises credential_disabled and an alert, and doctor names it', async () => {
    const hooks: string[] = []
    const hook = await listen((req, res) => {
      let raw = ''
      req.on('data', (d: Buffer) => (raw += d.toString()))
      req.on('end', () => {
        hooks.push(raw)
        res.end('ok')
      })
    })
    const h = await startHarness((c) => {
      c.notify.webhook_url = `${hook.url}/hook`
      c.alerts = [{ name: 'Credential file refused', condition: 'credentials_disabled >= 1', duration: '1h', action: 'notify_admin' }]
    })
    const staging = mkdtempSync(join(tmpdir(), 'gh-plant-'))
    try {
      expect(h.gateway.config.auth.encryption.enabled).toBe(true)
      // The attacker can write the auth directory but has no encryption key: a plaintext vault file.
      const planted = fakeKey('sk-proj-', 60)
      const plain = createCredentialVault({ dir: staging, encryption: { enabled: false }, watch: false, rescanInterval: 0 })
      const { id } = await plain.add({ provider: 'openai', type: 'api_key', token: planted })
      await plain.shutdown()
      const authDir = h.gateway.config.auth.dir
      copyFileSync(join(staging, `${id}.json`), join(authDir, `${id}.json`))
      chmodSync(join(authDir, `${id}.json`), 0o600)
      await waitFor(() => h.events.some((e) => e.result === 'credential_disabled'), 5000, { every: 20, what: 'the refusal' })
      expect(h.events.find((e) => e.result === 'credential_disabled')).toMatchObject({
        event_type: 'security_violation',
        details: { credential_id: id, code: 'GH_VAULT_PLAINTEXT_REFUSED' },
      })

      // Round robin would reach it within two requests if it were in rotation.
      for (let i = 0; i < 6; i++) {
        const res = await fetch(`${h.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${h.key}`, 'content-type': 'application/json' },
          body: JSON.stringify(openaiBody()),
        })
        expect(res.status).toBe(200)
      }
      const sent = h.upstream.requests.map((r) => r.headers.authorization)
      expect(sent).toEqual(Array(6).fill(`Bearer ${h.providerKeys.openai}`))

      await waitFor(() => hooks.length > 0, 5000, { every: 20, what: 'the alert' })
      expect(JSON.parse(hooks[0]!)).toEqual({ text: expect.stringContaining('Alert "Credential file refused": credentials_disabled reached 1') })

      const findings = await diagnose(h.gateway.config, h.dir)
      expect(findings.filter((f) => f.id.startsWith('vault-plaintext:'))).toEqual([
        expect.objectContaining({ id: `vault-plaintext:${id}.json`, severity: 'high', fix: expect.stringContaining('gatehouse vault migrate') }),
      ])
      const everything = JSON.stringify([h.events, findings, hooks]) + h.logs.join('\n')
      expect(everything).not.toContain(planted)
      expect(readdirSync(authDir)).toContain(`${id}.json`) // refused, left for the operator to look at
    } finally {
      await h.close()
      await hook.close()
      rmSync(staging, { recursive: true, force: true })
    }
  })
})
