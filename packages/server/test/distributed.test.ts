import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { MockUpstream, waitFor } from '@gatehouse/testing'
import { ensureBuilt, runCli, startCli, type Started } from './cli-helpers'
import { deleteRedisKeys } from './helpers'

beforeAll(() => ensureBuilt())

describe('two gateway processes sharing one Redis', () => {
  let dir: string
  let upstream: MockUpstream
  let a: Started
  let b: Started
  let key: string
  const prefix = `gh-test-${randomBytes(4).toString('hex')}:`
  const mgmt = randomBytes(24).toString('base64url')

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gh-dist-'))
    upstream = await MockUpstream.start()
    writeFileSync(
      join(dir, 'c.yaml'),
      `server:
  port: 0
  rate_limit: { enabled: true, requests_per_second: 0.001, burst: 20 }
  security: { rate_limiting: { enabled: false } }
store: { type: redis, url: "redis://127.0.0.1:6379", key_prefix: "${prefix}" }
metrics: { enabled: false }
alerts: []
management: { secret_key: "${mgmt}" }
providers:
  openai: { base_url: "${upstream.url}", api_key: "sk-proj-${'z'.repeat(40)}" }
`,
    )
    key = (await runCli(['keys', 'create', '--name', 'dist', '--config', 'c.yaml'], { cwd: dir })).stdout.trim()
    ;[a, b] = await Promise.all([startCli(['--config', 'c.yaml'], { cwd: dir }), startCli(['--config', 'c.yaml'], { cwd: dir })])
  })

  afterAll(async () => {
    a?.child.kill('SIGTERM')
    b?.child.kill('SIGTERM')
    await Promise.all([a?.exited, b?.exited])
    await upstream.close()
    await deleteRedisKeys(prefix)
    rmSync(dir, { recursive: true, force: true })
  })

  it('enforces one combined global limit: 60 requests across both admit exactly the burst of 20', async () => {
    const call = (url: string) =>
      fetch(`${url}/v1/models`, { headers: { 'x-api-key': key } }).then(async (r) => {
        await r.arrayBuffer()
        return r.status
      })
    const statuses = await Promise.all(Array.from({ length: 60 }, (_, i) => call(i % 2 ? a.url : b.url)))
    expect(statuses.filter((s) => s === 200)).toHaveLength(20)
    expect(statuses.filter((s) => s === 429)).toHaveLength(40)
  })

  it('refuses an address denylisted through one instance on the other within a second', async () => {
    const added = await fetch(`${a.url}/v0/management/security/ip-denylist`, {
      method: 'POST',
      headers: { authorization: `Bearer ${mgmt}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ip: '127.0.0.1', reason: 'test', ttl_seconds: 60 }),
    })
    expect(added.status).toBe(201)
    let status = 0
    const refused = async (): Promise<boolean> => {
      const r = await fetch(`${b.url}/v1/models`, { headers: { 'x-api-key': key } })
      await r.arrayBuffer()
      status = r.status
      return status === 403
    }
    await waitFor(refused, 1000, { every: 20, what: 'B to refuse the address A banned' })
    expect(status).toBe(403)
  })
})
