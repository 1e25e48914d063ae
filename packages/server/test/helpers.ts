import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import Redis from 'ioredis'
import type { SecurityEvent } from '@gatehouse/core'
import { MockUpstream } from '@gatehouse/testing'
import { createGateway, defaultConfig, type Gateway, type GatehouseConfig } from '@gatehouse/server'

export interface Harness {
  gateway: Gateway
  upstream: MockUpstream
  url: string
  dir: string
  /** A valid client key. */
  key: string
  keyId: string
  /** Provider credentials the gateway injects (generated per run). */
  providerKeys: { claude: string; openai: string; gemini: string }
  logs: string[]
  /** Every security event the gateway emitted. */
  events: SecurityEvent[]
  close(): Promise<void>
}

/** A fake credential with a real-looking prefix, generated at run time. */
export const fakeKey = (prefix: string, n = 40): string => prefix + randomBytes(n).toString('base64url').slice(0, n)

/** The gateway on an ephemeral loopback port in front of a mock upstream for all three providers. */
export async function startHarness(tweak: (c: GatehouseConfig) => void = () => undefined): Promise<Harness> {
  const upstream = await MockUpstream.start()
  const dir = mkdtempSync(join(tmpdir(), 'gh-server-'))
  const providerKeys = { claude: fakeKey('sk-ant-api03-', 60), openai: fakeKey('sk-proj-', 60), gemini: fakeKey('AIza', 35) }
  const config = defaultConfig()
  config.server.port = 0
  config.metrics.enabled = false
  config.auth.dir = join(dir, 'auths')
  config.logging.audit.file = join(dir, 'logs', 'audit.log')
  config.server.security.rate_limiting.enabled = false
  for (const p of ['claude', 'openai', 'gemini'] as const) {
    config.providers[p] = { enabled: true, base_url: upstream.url, max_tokens: 4096, api_key: providerKeys[p] }
  }
  tweak(config)
  const logs: string[] = []
  const logger = {
    error: (m: string, meta?: object) => logs.push(JSON.stringify({ level: 'error', m, ...meta })),
    warn: (m: string, meta?: object) => logs.push(JSON.stringify({ level: 'warn', m, ...meta })),
    info: (m: string, meta?: object) => logs.push(JSON.stringify({ level: 'info', m, ...meta })),
    debug: (m: string, meta?: object) => logs.push(JSON.stringify({ level: 'debug', m, ...meta })),
  }
  const events: SecurityEvent[] = []
  let gateway: ReturnType<typeof createGateway> | undefined
  let url: string, key: string, record: { id: string }
  try {
    gateway = createGateway(config, { logger, cwd: dir, eventSinks: [(e) => events.push(e)] })
    ;({ url } = await gateway.listen())
    ;({ key, record } = await gateway.keyStore.create({ name: 'test' }))
  } catch (err) {
    // A gateway that refuses to start (what some tests expect) leaves no mock provider listening.
    await gateway?.close(1000).catch(() => undefined)
    await upstream.close()
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
  return {
    gateway,
    upstream,
    url,
    dir,
    key,
    keyId: record.id,
    providerKeys,
    logs,
    events,
    close: async () => {
      await gateway.close(1000)
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

export const anthropicBody = (extra: object = {}) => ({
  model: 'claude-sonnet-4-5',
  max_tokens: 64,
  messages: [{ role: 'user', content: 'hello' }],
  ...extra,
})

export const openaiBody = (extra: object = {}) => ({
  model: 'gpt-4o-mini',
  max_tokens: 64,
  messages: [{ role: 'user', content: 'hello' }],
  ...extra,
})

/** An OpenAI chat completion through the harness's gateway, sent with its client key. */
export const postChat = (h: Pick<Harness, 'url' | 'key'>): Promise<Response> =>
  fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': h.key },
    body: JSON.stringify(openaiBody()),
  })

/** An Anthropic message through the harness's gateway, sent with its client key. */
export const postMessages = (h: Pick<Harness, 'url' | 'key'>): Promise<Response> =>
  fetch(`${h.url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': h.key },
    body: JSON.stringify(anthropicBody()),
  })

/** Delete every key a test wrote to the local Redis under its own prefix. */
export async function deleteRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis('redis://127.0.0.1:6379')
  const keys = await redis.keys(`${prefix}*`)
  if (keys.length) await redis.del(...keys)
  await redis.quit()
}

/**
 * The body the provider gets for a model call `sent` as JSON text by client key `keyId` that names
 * no end user: its key's own identifiers added before the closing brace, every other byte as sent
 * (the proxy's tenantEndUsers: `safety_identifier` and `prompt_cache_key` for OpenAI,
 * `metadata.user_id` for Anthropic).
 */
export function withTenantEndUser(sent: string, keyId: string, provider: 'openai' | 'claude'): string {
  const id = JSON.stringify(`gh-${createHash('sha256').update(keyId).update('\0').update('').digest('base64url')}`)
  const member = provider === 'openai' ? `"safety_identifier":${id},"prompt_cache_key":${id}` : `"metadata":{"user_id":${id}}`
  const end = sent.lastIndexOf('}')
  return `${sent.slice(0, end)},${member}${sent.slice(end)}`
}
