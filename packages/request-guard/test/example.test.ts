import { MockUpstream, collectEvents, listen, type RunningServer } from '@gatehouse/testing'
import { createGateway } from '../../../examples/mount-request-guard/server'
import { GEMINI_PATH, chat, claude, gemini, postJson } from './helpers'

describe('examples/mount-request-guard', () => {
  let upstream: MockUpstream
  let server: RunningServer
  const { events, onEvent } = collectEvents()
  beforeAll(async () => {
    upstream = await MockUpstream.start()
    const app = createGateway({
      targets: { openai: upstream.url, claude: upstream.url, gemini: upstream.url },
      guard: { providers: { claude: { maxTokens: 8192 } } },
      onEvent,
    })
    server = await listen(app)
  })
  afterAll(async () => {
    await server.close()
    await upstream.close()
  })
  beforeEach(() => {
    upstream.reset()
    events.length = 0
  })

  it.each<[string, string, string]>([
    ['/v1/chat/completions', '/v1/chat/completions', JSON.stringify(chat(), null, 2)],
    ['/claude/v1/messages', '/v1/messages', JSON.stringify(claude({ max_tokens: 8192 }))],
    [GEMINI_PATH, GEMINI_PATH, JSON.stringify(gemini())],
  ])('proxies %s with the exact body', async (path, upstreamPath, text) => {
    const res = await postJson(server.url, path, text)
    expect(res.status).toBe(200)
    expect(upstream.last!.path).toBe(upstreamPath)
    expect(upstream.last!.body.equals(Buffer.from(text))).toBe(true)
    expect(upstream.last!.headers['content-length']).toBe(String(Buffer.byteLength(text)))
  })

  it('refuses over the cap without calling the provider', async () => {
    const res = await postJson(server.url, '/v1/chat/completions', chat({ max_tokens: 100_000 }))
    expect(res.status).toBe(400)
    expect(res.json.error).toMatchObject({ param: 'max_tokens', code: 'integer_above_max_value' })
    expect(upstream.requests).toEqual([])
    expect(events[0]).toMatchObject({ event_type: 'security_violation', result: 'max_tokens_exceeded' })
  })
})
