import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import OpenAI from 'openai'
import Anthropic from '@anthropic-ai/sdk'
import type { SecurityEvent } from '@gatehouse/core'
import { commandsOf, ShellSession, shBlocks } from '@gatehouse/testing'
import { root } from './cli-helpers'
import { startHarness, type Harness } from './helpers'

// The official SDKs, pointed at a real gateway over loopback as the README's "Use it from your SDK"
// says (base URL = the gateway, key = a Gatehouse client key), in front of the mock provider.

let h: Harness
let openai: OpenAI
let anthropic: Anthropic
const BODY_LIMIT = 64 * 1024

beforeAll(async () => {
  h = await startHarness((c) => {
    c.server.body_limit = '64kb'
    c.server.retry_after = '1s'
  })
  openai = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: h.key, maxRetries: 0 })
  anthropic = new Anthropic({ baseURL: h.url, apiKey: h.key, maxRetries: 0 })
})
afterAll(() => h.close())
beforeEach(() => h.upstream.reset())

/** Every secret the test gave the gateway: none may appear in what a client sees. */
const secrets = (): string[] => [h.providerKeys.claude, h.providerKeys.openai, h.providerKeys.gemini, h.key]
const expectNoSecret = (text: string): void => {
  for (const s of secrets()) expect(text).not.toContain(s)
}
const eventsSince = (n: number): SecurityEvent[] => h.events.slice(n)

/** What every refusal must show an SDK: its status, an event for it since `n`, and no secret in the error's body or headers. */
function expectRefused(e: unknown, status: number, n: number, event: SecurityEvent['event_type'] = 'provider_request'): void {
  const err = e as { status?: number; error?: unknown; headers?: Headers }
  expect(err.status).toBe(status)
  expectNoSecret(JSON.stringify(err.error) + JSON.stringify([...(err.headers ?? new Headers()).entries()]))
  const seen = eventsSince(n).filter((ev) => ev.event_type === event)
  if (event === 'provider_request') expect(seen.some((ev) => (ev.details as { status?: number } | undefined)?.status === status)).toBe(true)
  else expect(seen.length).toBeGreaterThan(0)
}

describe('the OpenAI SDK through the gateway', () => {
  it('chat completions: JSON, with the provider key injected and the client key kept back', async () => {
    const answer = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
    expect(answer.choices[0]!.message.content).toBe('chunk0 chunk1 chunk2')
    expect(h.upstream.last!.headers.authorization).toBe(`Bearer ${h.providerKeys.openai}`)
    expect(JSON.stringify(h.upstream.last!.headers)).not.toContain(h.key)
  })

  it('chat completions: a stream, with usage', async () => {
    const stream = await openai.chat.completions.create({
      model: 'gpt-4o-mini',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'hi' }],
    })
    let text = ''
    let usage: unknown
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? ''
      if (chunk.usage) usage = chunk.usage
    }
    expect(text).toBe('chunk0 chunk1 chunk2 ')
    expect(usage).toEqual(expect.objectContaining({ completion_tokens: 15 }))
  })

  it('chat completions: tools, answered with a tool call', async () => {
    const answer = await openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'weather?' }],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }],
    })
    expect(answer.choices[0]!.finish_reason).toBe('tool_calls')
    expect(answer.choices[0]!.message.tool_calls?.[0]).toMatchObject({ type: 'function', function: { name: 'get_weather' } })
    expect((h.upstream.last!.json as { tools: unknown[] }).tools).toHaveLength(1)
  })

  it('embeddings, Responses and moderations at the root paths', async () => {
    const embedding = await openai.embeddings.create({ model: 'text-embedding-3-small', input: 'hi' })
    expect(embedding.data[0]!.embedding).toHaveLength(3)
    const response = await openai.responses.create({ model: 'gpt-4o-mini', input: 'hi' })
    expect(response.output_text).toBe('chunk0 chunk1 chunk2')
    const moderation = await openai.moderations.create({ model: 'omni-moderation-latest', input: 'hi' })
    expect(moderation.results[0]!.flagged).toBe(false)
    expect(h.upstream.requests.map((r) => r.path)).toEqual(['/v1/embeddings', '/v1/responses', '/v1/moderations'])
  })
})

describe('the Anthropic SDK through the gateway', () => {
  it('messages: JSON, with the provider key injected', async () => {
    const message = await anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] })
    expect(message.content[0]).toEqual({ type: 'text', text: 'chunk0 chunk1 chunk2' })
    expect(h.upstream.last!.headers['x-api-key']).toBe(h.providerKeys.claude)
  })

  it('messages.stream(): text events and the final message with usage', async () => {
    const stream = anthropic.messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] })
    let text = ''
    stream.on('text', (t) => (text += t))
    const final = await stream.finalMessage()
    expect(text).toBe('chunk0 chunk1 chunk2 ')
    expect(final.usage.output_tokens).toBe(15)
  })

  it('count_tokens', async () => {
    const count = await anthropic.messages.countTokens({ model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: 'hi' }] })
    expect(count.input_tokens).toBeGreaterThan(0)
    expect(h.upstream.last!.path).toBe('/v1/messages/count_tokens')
  })

  it('models.list() at the root path goes to Anthropic (it sends anthropic-version), not OpenAI', async () => {
    const models = []
    for await (const m of anthropic.models.list()) models.push(m.id)
    expect(models).toEqual(['claude-mock'])
    expect(h.upstream.last!.headers['x-api-key']).toBe(h.providerKeys.claude)
    expect(h.upstream.last!.headers.authorization).toBeUndefined()
  })
})

describe('refusals raise the SDK’s typed errors', () => {
  it('a wrong key: AuthenticationError (401) from both, nothing reaches the provider', async () => {
    const n = h.events.length
    const wrong = `gate_live_${'A'.repeat(43)}`
    const e1 = await new OpenAI({ baseURL: `${h.url}/v1`, apiKey: wrong, maxRetries: 0 }).models.list().catch((e: unknown) => e)
    expect(e1).toBeInstanceOf(OpenAI.AuthenticationError)
    const e2 = await new Anthropic({ baseURL: h.url, apiKey: wrong, maxRetries: 0 }).messages
      .create({ model: 'claude-sonnet-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e)
    expect(e2).toBeInstanceOf(Anthropic.AuthenticationError)
    expect((e2 as InstanceType<typeof Anthropic.AuthenticationError>).error).toMatchObject({ type: 'error', error: { type: 'authentication_error' } })
    expectRefused(e1, 401, n, 'auth_failure')
    expectRefused(e2, 401, n)
    expect(h.upstream.requests).toHaveLength(0)
    expect(eventsSince(n).filter((e) => e.event_type === 'auth_failure')).toHaveLength(2)
  })

  it("a 429 is retried by the SDK as it should be, then raised as RateLimitError", async () => {
    h.upstream.behave({ failStatus: 429, failMessage: 'slow down', headers: { 'retry-after': '0' } })
    const n = h.events.length
    const client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: h.key, maxRetries: 1 })
    const e = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(OpenAI.RateLimitError)
    expect(h.upstream.requests).toHaveLength(2)
    expectRefused(e, 429, n)
  })

  it("the gateway's own 429 (the key's requests per minute) is a RateLimitError with Retry-After", async () => {
    const { key } = await h.gateway.keyStore.create({ name: 'rpm-1', limits: { requests_per_minute: 1 } })
    const client = new Anthropic({ baseURL: h.url, apiKey: key, maxRetries: 0 })
    const body = { model: 'claude-sonnet-4-5', max_tokens: 8, messages: [{ role: 'user' as const, content: 'hi' }] }
    await client.messages.create(body)
    const n = h.events.length
    const e = (await client.messages.create(body).catch((x: unknown) => x)) as InstanceType<typeof Anthropic.RateLimitError>
    expect(e).toBeInstanceOf(Anthropic.RateLimitError)
    expect(Number(e.headers?.get('retry-after'))).toBeGreaterThan(0)
    expectRefused(e, 429, n, 'security_violation')
    expect(h.upstream.requests).toHaveLength(1)
  })

  it('max_tokens over the cap: BadRequestError (400) naming the field', async () => {
    const n = h.events.length
    const e = (await anthropic.messages
      .create({ model: 'claude-sonnet-4-5', max_tokens: 8192, messages: [{ role: 'user', content: 'hi' }] })
      .catch((x: unknown) => x)) as InstanceType<typeof Anthropic.BadRequestError>
    expect(e).toBeInstanceOf(Anthropic.BadRequestError)
    expect(e.message).toContain('max_tokens')
    expect(h.upstream.requests).toHaveLength(0)
    expectRefused(e, 400, n, 'security_violation')
  })

  it('a body over body_limit gets its 413 every time (20 in a row), never a connection error', async () => {
    const big = 'x'.repeat(BODY_LIMIT * 32) // 2 MiB: more than the socket buffers hold
    const n = h.events.length
    for (let i = 0; i < 20; i++) {
      const e = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: big }] }).catch((x: unknown) => x)
      expect(e).toBeInstanceOf(OpenAI.APIError)
      expect(e).not.toBeInstanceOf(OpenAI.APIConnectionError)
      expect((e as InstanceType<typeof OpenAI.APIError>).status).toBe(413)
    }
    const e = (await anthropic.messages
      .create({ model: 'claude-sonnet-4-5', max_tokens: 8, messages: [{ role: 'user', content: big }] })
      .catch((x: unknown) => x)) as InstanceType<typeof Anthropic.APIError>
    expect(e.status).toBe(413)
    expect(e.error).toMatchObject({ type: 'error', error: { type: 'request_too_large' } })
    expectRefused(e, 413, n, 'security_violation')
    expect(h.upstream.requests).toHaveLength(0)
    expect(eventsSince(n).filter((ev) => ev.event_type === 'security_violation').length).toBeGreaterThanOrEqual(21)
  })

  it('maintenance: a 503 APIError with the message and a short Retry-After', async () => {
    h.gateway.runtime.maintenance = { enabled: true, message: 'Deploying' }
    const n = h.events.length
    try {
      const e = (await anthropic.messages
        .create({ model: 'claude-sonnet-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] })
        .catch((x: unknown) => x)) as InstanceType<typeof Anthropic.APIError>
      expect(e).toBeInstanceOf(Anthropic.InternalServerError)
      expect(e.status).toBe(503)
      expect(e.message).toContain('Deploying')
      expect(e.headers?.get('retry-after')).toBe('1')
      const o = (await openai.models.list().catch((x: unknown) => x)) as InstanceType<typeof OpenAI.APIError>
      expect(o).toBeInstanceOf(OpenAI.InternalServerError)
      expect(o.status).toBe(503)
      expect(h.upstream.requests).toHaveLength(0)
      expectRefused(e, 503, n)
      expectRefused(o, 503, n)
    } finally {
      h.gateway.runtime.maintenance = { enabled: false, message: '' }
    }
  })
})

describe("the README's \"Use it from your SDK\" curl block, as written", () => {
  it('reaches each provider with its own credential, the client key kept back', async () => {
    const readme = join(root, 'README.md')
    const blocks = shBlocks(readFileSync(readme, 'utf8'), readme).filter((b) => b.section === 'Use it from your SDK')
    expect(blocks).toHaveLength(1)
    const [assign, ...commands] = commandsOf(blocks[0]!)
    expect(assign).toBe('GATEHOUSE=http://127.0.0.1:8317')
    const session = new ShellSession(root, { PATH: `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`, KEY: h.key, GATEHOUSE: h.url })
    try {
      const answers = []
      for (const command of commands) {
        const run = await session.run(command)
        expect(run.code).toBe(0)
        answers.push(JSON.parse(run.stdout) as Record<string, unknown>)
      }
      expect(answers.map((a) => a.object ?? a.type ?? Object.keys(a)[0])).toEqual(['chat.completion', 'message', 'candidates'])
      expect(h.upstream.requests.map((r) => r.headers.authorization ?? r.headers['x-api-key'] ?? r.headers['x-goog-api-key'])).toEqual([
        `Bearer ${h.providerKeys.openai}`,
        h.providerKeys.claude,
        h.providerKeys.gemini,
      ])
    } finally {
      await session.close()
    }
  })
})
