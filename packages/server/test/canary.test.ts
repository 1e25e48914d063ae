import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MockUpstream, sleep } from '@gatehouse/testing'
import { ensureBuilt, runCli, startCli } from './cli-helpers'
import { fakeKey } from './helpers'

function readTree(dir: string): string {
  let out = ''
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    const st = statSync(p)
    out += st.isDirectory() ? readTree(p) : readFileSync(p, 'utf8')
  }
  return out
}

beforeAll(() => ensureBuilt())

it('leaks no canary key to stdout, stderr, logs, error bodies or headers on any refusal or failure path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gh-canary-'))
  const upstream = await MockUpstream.start()
  const canaries = {
    claude: fakeKey('sk-ant-api03-', 80),
    openai: fakeKey('sk-proj-', 64),
    gemini: fakeKey('AIza', 35),
  }
  writeFileSync(
    join(dir, 'c.yaml'),
    `server: { port: 0, timeouts: { first_byte: 500ms } }
logging: { level: debug, audit: { file: ./logs/audit.log } }
metrics: { enabled: false }
providers:
  claude: { base_url: "${upstream.url}", api_key: "\${CANARY_CLAUDE}" }
  openai: { base_url: "${upstream.url}", api_key: "\${CANARY_OPENAI}" }
  gemini: { base_url: "http://127.0.0.1:1", api_key: "\${CANARY_GEMINI}" }
`,
  )
  const env = { CANARY_CLAUDE: canaries.claude, CANARY_OPENAI: canaries.openai, CANARY_GEMINI: canaries.gemini }
  const created = await runCli(['keys', 'create', '--name', 'canary', '--config', 'c.yaml'], { cwd: dir, env })
  const clientKey = created.stdout.trim()
  const gw = await startCli(['--config', 'c.yaml'], { cwd: dir, env })
  const seen: string[] = []
  const call = async (path: string, init: RequestInit = {}): Promise<number> => {
    const res = await fetch(`${gw.url}${path}`, init)
    seen.push(JSON.stringify([...res.headers.entries()]), await res.text())
    return res.status
  }
  const bodies: Record<string, string> = {
    claude: '{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}',
    openai: '{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}',
    gemini: '{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}',
  }
  const post = (headers: Record<string, string>, provider = 'claude'): RequestInit => ({
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: bodies[provider] ?? '{}',
  })
  try {
    const statuses: number[] = []
    statuses.push(await call('/v1/messages', post({})))
    statuses.push(await call('/v1/messages', post({ 'x-api-key': canaries.claude })))
    statuses.push(await call('/v1/chat/completions', post({ authorization: `Bearer ${canaries.openai}` }, 'openai')))
    statuses.push(await call(`/v1beta/models/x:generateContent?key=${clientKey}`, post({}, 'gemini')))
    statuses.push(await call(`/v1beta/models/x:generateContent?key=${canaries.gemini}`, post({}, 'gemini')))
    statuses.push(await call('/v1/messages', { ...post({ 'x-api-key': clientKey }), body: '{"model":"m","max_tokens":999999,"messages":[]}' }))
    upstream.behave({ failStatus: 401, failMessage: 'invalid key {key}' })
    statuses.push(await call('/v1/chat/completions', post({ authorization: `Bearer ${clientKey}` }, 'openai')))
    statuses.push(await call('/v1/chat/completions', post({ authorization: `Bearer ${clientKey}` }, 'openai'))) // the only credential stays in service
    upstream.behave({ failStatus: 500, failMessage: 'internal error for {key}' })
    statuses.push(await call('/v1/messages', post({ 'x-api-key': clientKey })))
    upstream.behave({ stall: true })
    statuses.push(await call('/v1/messages', post({ 'x-api-key': clientKey })))
    upstream.behave({ hangUp: true })
    statuses.push(await call('/v1/messages', post({ 'x-api-key': clientKey })))
    statuses.push(await call('/v1beta/models/x:generateContent', post({ 'x-goog-api-key': clientKey }, 'gemini')))
    upstream.reset()
    statuses.push(await call('/v1/messages', post({ 'x-api-key': clientKey })))
    // Last: a honeytoken, after which the caller is denied.
    statuses.push(await call('/v1/messages', post({ 'x-api-key': 'gate_live_EXAMPLE0do0not0use0this0key0it0never0works0' })))
    await sleep(100)
    statuses.push(await call('/v1/messages', post({ 'x-api-key': clientKey })))
    expect(statuses).toEqual([401, 401, 401, 400, 400, 400, 401, 401, 500, 504, 502, 502, 200, 401, 403])
  } finally {
    gw.child.kill('SIGTERM')
    await gw.exited
    await upstream.close()
  }
  const { stdout, stderr } = gw.output()
  const haystacks = { stdout, stderr, responses: seen.join('\n'), files: readTree(dir).replace(readFileSync(join(dir, 'c.yaml'), 'utf8'), '') }
  for (const [where, text] of Object.entries(haystacks)) {
    for (const [name, secret] of Object.entries({ ...canaries, client: clientKey })) {
      expect({ where, name, found: text.includes(secret) }).toEqual({ where, name, found: false })
    }
  }
  expect(stderr).toContain('upstream request failed')
  rmSync(dir, { recursive: true, force: true })
})
