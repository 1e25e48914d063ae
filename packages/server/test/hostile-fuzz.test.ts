import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MockUpstream, rawHttp } from '@gatehouse/testing'
import { ensureBuilt, runCli, startCli } from './cli-helpers'
import { fakeKey } from './helpers'

/**
 * A hostile tenant holding one ordinary client key sends every header a client can: the process
 * must answer or close each request and keep serving; nothing it sends reaches the provider
 * unless allowlisted, and nothing goes upstream without the credential.
 */

const HEADER_NAMES = [
  // framing and hop-by-hop
  'expect', 'trailer', 'te', 'upgrade', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding',
  'content-length', 'content-encoding', 'host', 'max-forwards',
  // forwarding and identity
  'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'forwarded', 'x-real-ip', 'via', 'x-device-fingerprint',
  'openai-organization', 'openai-project', 'x-goog-user-project',
  // credentials
  'cookie', 'authorization', 'proxy-authorization', 'x-api-key', 'x-goog-api-key', 'api-key',
  // ordinary
  'content-type', 'accept', 'accept-encoding', 'accept-language', 'range', 'if-none-match', 'if-match', 'origin', 'referer',
  'user-agent', 'cache-control', 'pragma', 'date', 'x-http-method-override', 'x-request-id', 'traceparent',
  'idempotency-key', 'x-stainless-os', 'anthropic-version', 'anthropic-beta', 'openai-beta', 'x-custom',
]

const VALUES = ['', 'x'.repeat(6000), 'close, x-api-key, authorization', '100-continue', 'chunked', '-1', ' , , ', 'gzip, br', '\u00ff\u00fe']
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD']
const PATHS = ['/v1/chat/completions', '/v1/messages', '/v1/models', '/v1/files']

/**
 * One raw HTTP/1.1 exchange on its own connection: the final status, or 0 when the gateway closed it
 * (or neither answered nor closed within 3 s). The head is enough; a stream or a kept-alive
 * connection is not waited for.
 */
const raw = (url: string, request: string): Promise<number> =>
  rawHttp(url, request, { headOnly: true, timeoutMs: 3000 }).then(
    (r) => r.status,
    () => 0,
  )

beforeAll(() => ensureBuilt())

it('survives the header fuzz: every name, odd values, repeats, every method; nothing unlisted or credential-less reaches the provider', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gh-fuzz-'))
  const upstream = await MockUpstream.start()
  const keys = { claude: fakeKey('sk-ant-api03-', 80), openai: fakeKey('sk-proj-', 64) }
  writeFileSync(
    join(dir, 'c.yaml'),
    `server: { port: 0, security: { rate_limiting: { enabled: false } } }
logging: { level: info, audit: { file: ./logs/audit.log } }
metrics: { enabled: false }
providers:
  claude: { base_url: "${upstream.url}", api_key: "\${FUZZ_CLAUDE}" }
  openai: { base_url: "${upstream.url}", api_key: "\${FUZZ_OPENAI}", endpoints: [openai.chat, openai.models, openai.files.list] }
`,
  )
  const env = { FUZZ_CLAUDE: keys.claude, FUZZ_OPENAI: keys.openai }
  const clientKey = (await runCli(['keys', 'create', '--name', 'tenant', '--config', 'c.yaml'], { cwd: dir, env })).stdout.trim()
  const gw = await startCli(['--config', 'c.yaml'], { cwd: dir, env }).catch(async (err: unknown) => {
    await upstream.close()
    rmSync(dir, { recursive: true, force: true })
    throw err
  })
  let exited: number | null | undefined
  void gw.exited.then((c) => (exited = c))
  const body = '{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
  try {
    const statuses = new Map<number, number>()
    let sent = 0
    const started = Date.now()
    for (const name of HEADER_NAMES) {
      // Every method with every name, each with two of the odd values (all of them, over the methods).
      for (let i = 0; i < METHODS.length * 2; i++) {
        const method = METHODS[i % METHODS.length]!
        const value = VALUES[(i + HEADER_NAMES.indexOf(name)) % VALUES.length]!
        const path = PATHS[sent % PATHS.length]!
        const withBody = method === 'POST' || method === 'PUT' || method === 'PATCH'
        // The header twice (a repeat), beside the client key and a well-formed body when the method has one.
        const head =
          `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: ${clientKey}\r\n` +
          `${name}: ${value}\r\n${name}: ${value}\r\n` +
          (withBody && name !== 'content-length' && name !== 'transfer-encoding' ? `content-type: application/json\r\ncontent-length: ${body.length}\r\n` : '') +
          'connection: close\r\n\r\n'
        const status = await raw(gw.url, head + (withBody ? body : ''))
        statuses.set(status, (statuses.get(status) ?? 0) + 1)
        sent++
        expect(exited).toBeUndefined()
      }
      // Bounded in time as well as in count.
      if (Date.now() - started > 120_000) break
    }
    expect(sent).toBe(HEADER_NAMES.length * METHODS.length * 2)
    // The process lives and serves the next, ordinary request.
    const ok = await fetch(`${gw.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': clientKey, 'anthropic-version': '2023-06-01' }, body })
    expect(ok.status).toBe(200)
    expect(exited).toBeUndefined()
    // Some of the fuzz went through (allowed endpoints), some was refused: both paths were exercised.
    expect([...statuses.keys()].some((s) => s >= 200 && s < 300)).toBe(true)
    expect([...statuses.keys()].some((s) => s >= 400)).toBe(true)

    // What reached the provider: always the credential, never a client's credential, forwarding,
    // fingerprint, account or framing header, nor an unlisted one.
    expect(upstream.requests.length).toBeGreaterThan(0)
    const never = ['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'forwarded', 'x-real-ip', 'via', 'cookie', 'proxy-authorization', 'api-key', 'openai-organization', 'openai-project', 'x-goog-user-project', 'expect', 'trailer', 'te', 'upgrade', 'keep-alive', 'proxy-connection', 'x-custom', 'x-http-method-override', 'range', 'origin', 'referer', 'max-forwards']
    for (const r of upstream.requests) {
      const credential = r.path.startsWith('/v1/messages') ? r.headers['x-api-key'] : r.headers.authorization
      expect([r.method, r.path, credential]).toEqual([r.method, r.path, r.path.startsWith('/v1/messages') ? keys.claude : `Bearer ${keys.openai}`])
      for (const name of never) expect([r.path, name, r.headers[name]]).toEqual([r.path, name, undefined])
      expect(JSON.stringify(r.headers)).not.toContain(clientKey)
      // The fingerprint the provider sees is the gateway's own, never a client's value.
      const fp = r.headers['x-device-fingerprint']
      if (fp !== undefined) expect(fp).toMatch(/^[0-9a-f]{64}$/)
    }
  } finally {
    gw.child.kill('SIGTERM')
    await gw.exited
    await upstream.close()
    rmSync(dir, { recursive: true, force: true })
  }
}, 240_000)
