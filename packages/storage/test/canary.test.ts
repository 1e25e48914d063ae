import { randomBytes } from 'node:crypto'
import { createStorageSink } from '@gatehouse/storage'
import { authFailure, pgUrl, providerRequest, testDb, type TestDb } from './helpers'

let db: TestDb

beforeAll(async () => {
  db = await testDb()
})
afterAll(async () => {
  await db.cleanup()
})

const b64 = (n: number): string => randomBytes(n).toString('base64url')

describe('canary sweep', () => {
  it('no key, token or configured secret reaches any row of any table', async () => {
    const clientKey = `gate_live_${b64(32)}`
    const anthropicKey = `sk-ant-api03-${b64(40)}`
    const openaiKey = `sk-proj-${b64(40)}`
    const bearer = b64(30)
    const jwt = `eyJ${b64(20)}.${b64(30)}.${b64(30)}`
    const configured = `provider-secret-${randomBytes(20).toString('hex')}` // a known secret of no recognisable format
    const password = `dbpw${randomBytes(12).toString('hex')}`
    const canaries = [clientKey, anthropicKey, openaiKey, bearer, jwt, configured, password]
    const everywhere = `k=${clientKey} a=${anthropicKey} o=${openaiKey} auth=Bearer ${bearer} jwt=${jwt} cfg=${configured} pw=${password}`

    const sink = createStorageSink({
      url: pgUrl(),
      schema: db.schema,
      storeBodies: true,
      knownSecrets: [configured, password],
    })
    sink.record(
      providerRequest(
        { user_id: clientKey, request_id: everywhere, provider: anthropicKey, result: everywhere },
        { method: 'POST', path: `/v1/messages?key=${clientKey}&x=${everywhere}` },
      ),
    )
    sink.record(
      authFailure({
        user_id: `Bearer ${bearer}`,
        request_id: configured,
        result: everywhere,
        provider: openaiKey,
        details: {
          authorization: `Bearer ${bearer}`,
          'x-api-key': clientKey,
          headers: { cookie: `session=${configured}`, 'x-goog-api-key': 'AIza' + b64(30) },
          nested: [{ note: everywhere }, everywhere],
          [clientKey]: 'a key as a field name',
        },
      }),
    )
    sink.recordBody(everywhere, {
      model: 'claude-x',
      api_key: anthropicKey,
      messages: [{ role: 'user', content: `please remember ${everywhere}` }],
      metadata: { password, token: jwt },
    })
    sink.recordBody('raw', Buffer.from(JSON.stringify({ content: everywhere })))
    sink.recordBody('text', `not json: ${everywhere}`)
    await sink.close()
    expect(sink.stats()).toMatchObject({ written: 5, dropped: 0 })

    // Every row of every table, as text.
    const dump: string[] = []
    for (const table of ['api_requests', 'security_events', 'request_bodies', 'gatehouse_migrations']) {
      const { rows } = await db.admin.query<{ row: string }>(`SELECT t::text AS row FROM ${db.schema}.${table} t`)
      dump.push(...rows.map((r) => r.row))
    }
    const text = dump.join('\n')
    expect(dump.length).toBeGreaterThanOrEqual(6)
    for (const canary of canaries) expect(text).not.toContain(canary)
    // The masked forms are there: the rows still say what kind of secret was present.
    expect(text).toContain('gate_live_****')
    expect(text).toContain('sk-ant-****')
    expect(text).toContain('Bearer ****')
    expect(text).toContain('key=****')
  })
})
