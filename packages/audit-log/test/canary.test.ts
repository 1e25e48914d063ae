import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import request from 'supertest'
import { SECURITY_EVENT_TYPES, type SecurityEvent } from '@gatehouse/core'
import { createTestApp, nextTurn, tempDir, waitFor } from '@gatehouse/testing'
import { accessLog, createAuditLogger, verifyAuditLog } from '@gatehouse/audit-log'
import { newKey } from './helpers'

/** Fresh secrets in each credential format Gatehouse handles; `find` is what must never appear. */
type CanaryName = 'anthropic' | 'openai' | 'gate' | 'bearer' | 'oauthRefresh' | 'anthropicRefresh' | 'queryKey' | 'encryption'

function canaries(): Record<CanaryName, { value: string; find: string }> {
  const r = (n: number): string => randomBytes(n).toString('base64url').replace(/[-_]/g, 'x')
  const anthropic = r(60)
  const openai = r(48)
  const gate = r(32).slice(0, 43)
  const bearer = r(30)
  const refresh = r(40)
  const anthropicRefresh = r(50)
  const queryKey = r(30)
  const encryption = randomBytes(32).toString('hex')
  return {
    anthropic: { value: `sk-ant-api03-${anthropic}`, find: anthropic },
    openai: { value: `sk-proj-${openai}`, find: openai },
    gate: { value: `gate_live_${gate}`, find: gate },
    bearer: { value: `Bearer ${bearer}`, find: bearer },
    oauthRefresh: { value: `1//0g${refresh}`, find: refresh },
    anthropicRefresh: { value: `sk-ant-ort01-${anthropicRefresh}`, find: anthropicRefresh },
    queryKey: { value: `https://api.example.com/v1/models?key=${queryKey}&alt=json`, find: queryKey },
    encryption: { value: encryption, find: encryption },
  }
}

function plantedEvent(type: SecurityEvent['event_type'], c: ReturnType<typeof canaries>): SecurityEvent {
  return {
    timestamp: new Date().toISOString(),
    event_type: type,
    provider: `claude ${c.openai.value}`,
    user_id: c.gate.value,
    ip: `203.0.113.7 ${c.bearer.value}`,
    request_id: `req ${c.anthropic.value}`,
    result: `failed with ${c.anthropicRefresh.value}`,
    details: {
      reason: `upstream said: invalid x-api-key ${c.anthropic.value}`,
      headers: { authorization: c.bearer.value, 'x-api-key': c.anthropic.value, 'x-goog-api-key': c.queryKey.find },
      oauth: { access_token: c.anthropic.value, refresh_token: c.oauthRefresh.value, expires_at: 1 },
      url: c.queryKey.value,
      list: [c.openai.value, { token: c.oauthRefresh.value }],
      [c.gate.value]: 'a key used as an object key',
      note: `encryption key ${c.encryption.value}`,
      encryption_key: c.encryption.value,
    },
  }
}

describe('canary sweep: no planted secret reaches the audit file or the application log', () => {
  it('masks every canary in events of all seven types, in every field', async () => {
    const { dir, cleanup } = tempDir()
    try {
      const c = canaries()
      const file = join(dir, 'audit.log')
      const key = newKey()
      // What the audit log reports to its logger (the application log's lines are the server's; its
      // own canary sweep runs the whole gateway).
      let appText = ''
      const record = (m: string, meta?: unknown): void => void (appText += `${JSON.stringify({ m, meta })}\n`)
      const appLogger = { error: record, warn: record, info: record, debug: record }
      const audit = createAuditLogger({ file, key, knownSecrets: [c.encryption.value], logger: appLogger })
      for (const type of SECURITY_EVENT_TYPES) audit.log(plantedEvent(type, c))
      // The access log, with keys in the path and the query string.
      const app = createTestApp(accessLog({ onEvent: audit.log }))
      await request(app).get(`/v1/models/${c.gate.value}?key=${c.queryKey.find}&api_key=${c.openai.value}&t=${c.bearer.find}`).expect(200)
      await waitFor(() => audit.stats().accepted === SECURITY_EVENT_TYPES.length + 1)
      await audit.close()
      await nextTurn()

      const auditText = readFileSync(file, 'utf8')
      expect(auditText.split('\n').filter(Boolean)).toHaveLength(SECURITY_EVENT_TYPES.length + 1)
      for (const [name, { find }] of Object.entries(c)) {
        expect({ sink: 'audit', name, leaked: auditText.includes(find) }).toEqual({ sink: 'audit', name, leaked: false })
        expect({ sink: 'app log', name, leaked: appText.includes(find) }).toEqual({ sink: 'app log', name, leaked: false })
      }
      expect(auditText).not.toContain(key)
      // Masked, not deleted: the kind of credential is still visible.
      expect(auditText).toContain('sk-ant-****')
      expect(auditText).toContain('gate_live_****')
      expect(auditText).toContain('Bearer ****')
      expect(await verifyAuditLog(file, key)).toMatchObject({ ok: true, lines: SECURITY_EVENT_TYPES.length + 1 })
    } finally {
      cleanup()
    }
  })
})
