import { randomBytes } from 'node:crypto'
import { httpRequest, waitFor } from '@gatehouse/testing'
import { anthropicBody, fakeKey, openaiBody, startHarness, type Harness } from './helpers'

const mgmtKey = randomBytes(24).toString('base64url')

/** A request from another loopback address (Linux routes all of 127/8 to lo). */
const from = async (h: Harness, localAddress: string): Promise<number> =>
  (await httpRequest(h.url, { path: '/v1/models', localAddress, headers: { authorization: `Bearer ${h.key}` } })).status

describe('management while the audit log cannot be written (audit file on /dev/full)', () => {
  let h: Harness
  let vaultToken: string
  beforeAll(async () => {
    h = await startHarness((c) => {
      c.logging.audit.file = '/dev/full'
      c.management = { enabled: true, secret_key: mgmtKey, allow_remote: false }
      c.metrics = { ...c.metrics, enabled: true, host: '127.0.0.1', port: 0 }
    })
    vaultToken = fakeKey('sk-ant-api03-', 60)
    await h.gateway.vault.add({ provider: 'claude', type: 'api_key', token: vaultToken })
    // Any event makes the audit log try to write, and fail (ENOSPC).
    await fetch(`${h.url}/v1/models`)
    await waitFor(() => !h.gateway.audit!.healthy, 5000, { every: 20, what: 'the audit log to turn unhealthy' })
    expect(h.gateway.audit!.healthy).toBe(false)
  })
  afterAll(() => h.close())

  const api = (path: string, method = 'GET', body?: unknown): Promise<Response> =>
    fetch(`${h.url}/v0/management${path}`, {
      method,
      headers: { authorization: `Bearer ${mgmtKey}`, 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
  const refused = async (res: Response, message: string): Promise<void> => {
    expect(res.status).toBe(503)
    expect(await res.json()).toEqual({ error: { message, status: 503 } })
  }

  it('lets the defensive actions through, loudly: denylist add, kill switch, key revoke, maintenance on', async () => {
    expect(await from(h, '127.0.0.9')).toBe(200)
    expect((await api('/security/ip-denylist', 'POST', { ip: '127.0.0.9', reason: 'incident' })).status).toBe(201)
    expect(await from(h, '127.0.0.9')).toBe(403)

    expect((await api('/providers/openai', 'PUT', { enabled: false })).status).toBe(200)
    const off = await fetch(`${h.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${h.key}`, 'content-type': 'application/json' }, body: JSON.stringify(openaiBody()) })
    expect(off.status).toBe(503)

    const victim = await h.gateway.keyStore.create({ name: 'leaked' })
    expect((await api(`/keys/${victim.record.id}`, 'DELETE')).status).toBe(200)
    const revoked = await fetch(`${h.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': victim.key, 'content-type': 'application/json' }, body: JSON.stringify(anthropicBody()) })
    expect(revoked.status).toBe(401)

    const errors = h.logs.filter((l) => l.includes('goes ahead while the audit log cannot be written'))
    expect(errors.map((l) => (JSON.parse(l) as { level: string; action: string }).action)).toEqual(['denylist_add', 'provider_off', 'key_revoke'])
    expect(errors.every((l) => (JSON.parse(l) as { level: string }).level === 'error')).toBe(true)
    expect(h.events.filter((e) => e.result === 'unaudited_change').map((e) => e.details?.action)).toEqual(['denylist_add', 'provider_off', 'key_revoke'])
    const metrics = await (await fetch(h.gateway.metricsUrl()!)).text()
    expect(metrics).toContain('gatehouse_unaudited_changes_total{action="denylist_add"} 1')
    expect(metrics).toContain('gatehouse_unaudited_changes_total{action="provider_off"} 1')
    expect(metrics).toContain('gatehouse_unaudited_changes_total{action="key_revoke"} 1')
  })

  it('refuses relaxations and additions with 503', async () => {
    await refused(await api('/providers/openai', 'PUT', { enabled: true }), 'Changes are refused while the audit log cannot be written')
    await refused(await api('/security/ip-denylist/127.0.0.9', 'DELETE'), 'Changes are refused while the audit log cannot be written')
    await refused(await api('/keys', 'POST', { name: 'new' }), 'Changes are refused while the audit log cannot be written')
    await refused(await api('/auths', 'POST', { provider: 'openai', type: 'api_key', token: fakeKey('sk-proj-', 60) }), 'Changes are refused while the audit log cannot be written')
    expect(await from(h, '127.0.0.9')).toBe(403)
    expect(h.gateway.runtime.disabledProviders.has('openai')).toBe(true)
  })

  it('refuses an export with secrets (no secret in the answer), and still serves the masked export', async () => {
    const res = await api('/auths/export?include_secrets=true')
    const text = await res.text()
    expect(res.status).toBe(503)
    expect(JSON.parse(text)).toEqual({ error: { message: 'Exporting secrets is refused while the audit log cannot be written', status: 503 } })
    expect(text).not.toContain(vaultToken)
    const masked = await api('/auths/export')
    expect(masked.status).toBe(200)
    expect(await masked.text()).not.toContain(vaultToken)
    expect(h.events.some((e) => e.result === 'exported_with_secrets')).toBe(false)
    expect(JSON.stringify(h.events) + h.logs.join('\n')).not.toContain(vaultToken)
  })

  it('switches maintenance on, and refuses to switch it off', async () => {
    expect((await api('/maintenance', 'PUT', { enabled: true, message: 'Incident' })).status).toBe(200)
    expect((await fetch(`${h.url}/v1/models`, { headers: { authorization: `Bearer ${h.key}` } })).status).toBe(503)
    await refused(await api('/maintenance', 'PUT', { enabled: false }), 'Changes are refused while the audit log cannot be written')
    expect(h.gateway.runtime.maintenance.enabled).toBe(true)
  })
})
