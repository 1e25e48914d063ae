import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import http from 'node:http'
import { httpRequest, MockUpstream, waitFor } from '@gatehouse/testing'
import { ensureBuilt, runCli, startCli } from './cli-helpers'

beforeAll(() => ensureBuilt())

it('SIGTERM under load: every request that got a response has its provider_request line on disk', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gh-sigterm-'))
  const upstream = await MockUpstream.start({ delayMs: 300 })
  writeFileSync(
    join(dir, 'c.yaml'),
    `server: { port: 0, timeouts: { shutdown_grace: 10s }, security: { rate_limiting: { enabled: false } } }
metrics: { enabled: false }
providers:
  openai: { base_url: "${upstream.url}", api_key: "sk-proj-${'s'.repeat(40)}" }
`,
  )
  const key = (await runCli(['keys', 'create', '--name', 'load', '--config', 'c.yaml'], { cwd: dir })).stdout.trim()
  const gw = await startCli(['--config', 'c.yaml'], { cwd: dir })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 200 })
  // An answer the shutdown cut counts as none (0).
  const one = (): Promise<number> =>
    httpRequest(gw.url, { path: '/v1/models', agent, headers: { 'x-api-key': key }, timeoutMs: 60_000 }).then(
      (r) => r.status,
      () => 0,
    )
  try {
    const inFlight = Array.from({ length: 150 }, () => one())
    // SIGTERM once requests are at the provider (a fixed 100 ms was too short on a loaded machine:
    // none had arrived, and none was answered).
    await waitFor(() => upstream.requests.length > 0, 10_000, { what: 'a request at the provider' })
    gw.child.kill('SIGTERM')
    const statuses = await Promise.all(inFlight)
    expect(await gw.exited).toBe(0)
    const answered = statuses.filter((s) => s === 200).length
    expect(answered).toBeGreaterThan(0)
    const lines = readFileSync(join(dir, 'logs', 'audit.log'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { event_type: string; details?: { status?: number } })
    const logged = lines.filter((l) => l.event_type === 'provider_request' && l.details?.status === 200).length
    expect(logged).toBe(answered)
    expect(JSON.stringify(lines)).not.toContain(key)
  } finally {
    agent.destroy()
    gw.child.kill('SIGKILL')
    await upstream.close()
    rmSync(dir, { recursive: true, force: true })
  }
})
