import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { anthropicBody, startHarness, type Harness } from './helpers'

const mgmtKey = randomBytes(24).toString('base64url')

describe('management API: credentials and denylist', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness((c) => {
      c.management = { enabled: true, secret_key: mgmtKey, allow_remote: false }
      delete c.providers.claude!.api_key // claude is served only from the vault
    })
  })
  afterAll(() => h.close())

  const api = (path: string, init: RequestInit = {}): Promise<Response> =>
    fetch(`${h.url}/v0/management${path}`, {
      ...init,
      headers: { authorization: `Bearer ${mgmtKey}`, 'content-type': 'application/json', ...(init.headers as object) },
    })
  const claude = (): Promise<Response> =>
    fetch(`${h.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': h.key, 'content-type': 'application/json' }, body: JSON.stringify(anthropicBody()) })

  it('adds a credential encrypted at rest, serves with it, lists and exports it masked, and revokes it', async () => {
    expect((await claude()).status).toBe(403) // no credential for claude: not retryable
    const token = `sk-ant-api03-${randomBytes(48).toString('base64url')}`
    const added = await api('/auths', { method: 'POST', body: JSON.stringify({ provider: 'claude', type: 'api_key', token, label: 'team-a' }) })
    expect(added.status).toBe(201)
    const { id } = (await added.json()) as { id: string }
    const files = readdirSync(join(h.dir, 'auths')).filter((f) => f.startsWith('cred_'))
    expect(files).toHaveLength(1)
    expect(readFileSync(join(h.dir, 'auths', files[0]!), 'utf8')).not.toContain(token)

    expect((await claude()).status).toBe(200)
    expect(h.upstream.last!.headers['x-api-key']).toBe(token)

    const listed = await (await api('/auths')).text()
    expect(listed).toContain(id)
    expect(listed).not.toContain(token)
    const masked = await (await api('/auths/export')).text()
    expect(masked).not.toContain(token)
    const full = (await (await api('/auths/export?include_secrets=true')).json()) as { credentials: { token?: string }[] }
    expect(full.credentials[0]?.token).toBe(token)
    expect(h.events.some((e) => e.event_type === 'credential_access' && e.result === 'exported_with_secrets' && e.ip === '127.0.0.1')).toBe(true)

    expect((await api(`/auths/claude/${id}`, { method: 'DELETE' })).status).toBe(200)
    expect((await claude()).status).toBe(403) // no credential for claude: not retryable
    expect((await api('/auths/claude/cred_000000000000000000000000', { method: 'DELETE' })).status).toBe(404)
    const changes = h.events.filter((e) => e.event_type === 'config_change').map((e) => e.result)
    expect(changes).toEqual(expect.arrayContaining(['credential_added']))
    expect(JSON.stringify(h.events) + h.logs.join('\n')).not.toContain(token)
  })

  it('refuses a bad credential body with 400, echoing no secret', async () => {
    const token = `sk-proj-${randomBytes(40).toString('base64url')}`
    const res = await api('/auths', { method: 'POST', body: JSON.stringify({ provider: 'claude', type: 'password', token }) })
    expect(res.status).toBe(400)
    expect(await res.text()).not.toContain(token)
  })

  it('adds, lists and removes runtime denylist entries (CIDRs included)', async () => {
    const added = await api('/security/ip-denylist', { method: 'POST', body: JSON.stringify({ ip: '203.0.113.0/24', reason: 'scanner', ttl_seconds: 600 }) })
    expect(added.status).toBe(201)
    const list = (await (await api('/security/ip-denylist')).json()) as { entries: { ip: string; reason: string }[] }
    expect(list.entries).toEqual([expect.objectContaining({ ip: '203.0.113.0/24', reason: 'scanner' })])
    expect((await api('/security/ip-denylist', { method: 'POST', body: JSON.stringify({ ip: 'not-an-ip' }) })).status).toBe(400)
    expect((await api('/security/ip-denylist', { method: 'POST', body: JSON.stringify({ ip: '10.0.0.1', ttl_seconds: -5 }) })).status).toBe(400)
    expect((await api('/security/ip-denylist/203.0.113.0/24', { method: 'DELETE' })).status).toBe(200)
    expect((await api('/security/ip-denylist/203.0.113.0/24', { method: 'DELETE' })).status).toBe(404)
    await api('/security/ip-denylist', { method: 'POST', body: JSON.stringify({ ip: '198.51.100.7' }) })
    const cleared = (await (await api('/security/ip-denylist', { method: 'DELETE' })).json()) as { removed: string[] }
    expect(cleared.removed).toEqual(['198.51.100.7'])
    const changes = h.events.filter((e) => e.event_type === 'config_change' && e.user_id === 'management').map((e) => e.result)
    expect(changes).toEqual(expect.arrayContaining(['denylist_add', 'denylist_remove', 'denylist_clear']))
  })
})
