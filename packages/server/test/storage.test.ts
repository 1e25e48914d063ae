import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client } from 'pg'
import { anthropicBody, startHarness } from './helpers'
import { ensureBuilt, runCli } from './cli-helpers'

const db = `gh_srv_${randomBytes(4).toString('hex')}`
const url = `postgresql://postgres@127.0.0.1:5432/${db}`

beforeAll(async () => {
  ensureBuilt()
  const admin = new Client({ connectionString: 'postgresql://postgres@127.0.0.1:5432/postgres' })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${db}`)
  await admin.end()
})
afterAll(async () => {
  const admin = new Client({ connectionString: 'postgresql://postgres@127.0.0.1:5432/postgres' })
  await admin.connect()
  await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`)
  await admin.end()
})

describe('request storage in the gateway', () => {
  it('migrates with gatehouse storage migrate, then stores requests and security events without secrets', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-storage-'))
    writeFileSync(join(dir, 'c.yaml'), `storage: { enabled: true, url: "${url}" }\n`)
    const first = await runCli(['storage', 'migrate', '--config', 'c.yaml'], { cwd: dir })
    expect(first.stdout).toMatch(/schema gatehouse: applied 1/)
    expect(first.code).toBe(0)
    expect((await runCli(['storage', 'migrate', '--config', 'c.yaml'], { cwd: dir })).stdout).toContain('up to date')
    rmSync(dir, { recursive: true, force: true })

    const h = await startHarness((c) => {
      c.storage = { enabled: true, url, store_bodies: false, retention_days: 30 }
    })
    try {
      const ok = await fetch(`${h.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': h.key, 'content-type': 'application/json' }, body: JSON.stringify(anthropicBody()) })
      expect(ok.status).toBe(200)
      const wrong = `gate_live_${randomBytes(32).toString('base64url')}`
      expect((await fetch(`${h.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': wrong } })).status).toBe(401)
      await h.gateway.storage!.flush()
      const client = new Client({ connectionString: url })
      await client.connect()
      try {
        const requests = await client.query('SELECT key_id, response_status, provider FROM gatehouse.api_requests ORDER BY timestamp')
        expect(requests.rows).toEqual(expect.arrayContaining([expect.objectContaining({ key_id: h.keyId, response_status: 200, provider: 'claude' })]))
        const events = await client.query("SELECT event_type, result FROM gatehouse.security_events WHERE event_type = 'auth_failure'")
        expect(events.rows).toEqual([expect.objectContaining({ result: 'invalid_key' })])
        const everything = JSON.stringify((await client.query('SELECT * FROM gatehouse.api_requests')).rows) + JSON.stringify((await client.query('SELECT * FROM gatehouse.security_events')).rows)
        for (const secret of [h.key, wrong, h.providerKeys.claude]) expect(everything).not.toContain(secret)
      } finally {
        await client.end()
      }
    } finally {
      await h.close()
    }
  })

  it('stores the masked body of each admitted request with store_bodies on, and none with it off', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-storage-'))
    writeFileSync(join(dir, 'c.yaml'), `storage: { enabled: true, url: "${url}" }\n`)
    expect((await runCli(['storage', 'migrate', '--config', 'c.yaml'], { cwd: dir })).code).toBe(0)
    rmSync(dir, { recursive: true, force: true })
    const client = new Client({ connectionString: url })
    await client.connect()
    try {
      for (const storeBodies of [true, false]) {
        const h = await startHarness((c) => {
          c.storage = { enabled: true, url, store_bodies: storeBodies, retention_days: 30 }
        })
        try {
          const marker = `marker-${randomBytes(6).toString('hex')}`
          const body = anthropicBody({ messages: [{ role: 'user', content: `${marker} my key is ${h.providerKeys.openai}` }] })
          const ok = await fetch(`${h.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': h.key, 'content-type': 'application/json' }, body: JSON.stringify(body) })
          expect(ok.status).toBe(200)
          const requestId = ok.headers.get('x-gatehouse-request-id')
          // A refused request (no key) is never stored.
          const refusedMarker = `refused-${randomBytes(6).toString('hex')}`
          expect((await fetch(`${h.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(anthropicBody({ messages: [{ role: 'user', content: refusedMarker }] })) })).status).toBe(401)
          await h.gateway.storage!.flush()
          const rows = (await client.query('SELECT request_id, body::text AS body FROM gatehouse.request_bodies WHERE body::text LIKE $1', [`%${marker}%`])).rows as Array<{ request_id: string; body: string }>
          if (storeBodies) {
            expect(rows).toEqual([expect.objectContaining({ request_id: requestId })])
            expect(rows[0]!.body).not.toContain(h.providerKeys.openai)
            expect(rows[0]!.body).toContain('****')
          } else {
            expect(rows).toEqual([])
          }
          expect((await client.query('SELECT 1 FROM gatehouse.request_bodies WHERE body::text LIKE $1', [`%${refusedMarker}%`])).rows).toEqual([])
        } finally {
          await h.close()
        }
      }
    } finally {
      await client.end()
    }
  })

  it('keeps serving at full speed when the database is unreachable', async () => {
    const h = await startHarness((c) => {
      c.storage = { enabled: true, url: 'postgresql://postgres@127.0.0.1:1/none', store_bodies: false, retention_days: 30 }
    })
    try {
      const started = Date.now()
      for (let i = 0; i < 20; i++) {
        const r = await fetch(`${h.url}/v1/models`, { headers: { 'x-api-key': h.key } })
        expect(r.status).toBe(200)
      }
      expect(Date.now() - started).toBeLessThan(5000)
      expect((await fetch(`${h.url}/readyz`)).status).toBe(503)
    } finally {
      await h.close()
    }
  })
})

describe('the dashboard behind the management key', () => {
  it('shows a login form and no data without a session', async () => {
    const mgmt = randomBytes(32).toString('base64url')
    const h = await startHarness((c) => {
      c.management = { enabled: true, secret_key: mgmt, allow_remote: false }
    })
    try {
      await fetch(`${h.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': 'gate_live_' + 'Q'.repeat(43) } })
      const page = await fetch(`${h.url}/v0/management/dashboard/`)
      const html = await page.text()
      expect(html.toLowerCase()).toContain('<form')
      expect(html).not.toContain('auth_failure')
      expect(page.headers.get('content-security-policy')).toContain("default-src 'none'")
      const csrf = /name="csrf" value="([^"]+)"/.exec(html)![1]!
      const loginCookie = page.headers.get('set-cookie')!.split(';')[0]!
      const forged = await fetch(`${h.url}/v0/management/dashboard/login`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: loginCookie },
        body: `key=${encodeURIComponent(mgmt)}&csrf=wrong`,
      })
      expect(forged.status).toBe(403)
      const login = await fetch(`${h.url}/v0/management/dashboard/login`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: loginCookie },
        body: `key=${encodeURIComponent(mgmt)}&csrf=${encodeURIComponent(csrf)}`,
      })
      const cookie = login.headers.get('set-cookie')
      expect(cookie).toMatch(/HttpOnly/i)
      expect(cookie).toMatch(/SameSite=Strict/i)
      const inside = await (await fetch(`${h.url}/v0/management/dashboard/`, { headers: { cookie: cookie!.split(';')[0]! } })).text()
      expect(inside).toContain('auth_failure')
      expect(inside).not.toContain(mgmt)
    } finally {
      await h.close()
    }
  })
})
