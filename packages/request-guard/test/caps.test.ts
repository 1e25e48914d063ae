import {
  CLAUDE_PATH,
  GEMINI_PATH,
  OPENAI_PATH,
  chat,
  claude,
  expectClaudeError,
  expectGeminiError,
  expectOpenAIError,
  gemini,
  postJson,
  startGuarded,
  type GuardedApp,
  useGuarded,
} from './helpers'

describe('requestGuard with default options: max_tokens over the cap (400, provider-native, names the field)', () => {
  const app = useGuarded()
  it.each<[string, Record<string, unknown>, string]>([
    ['max_tokens', chat({ max_tokens: 4097 }), 'max_tokens'],
    ['max_completion_tokens', chat({ max_completion_tokens: 100_000 }), 'max_completion_tokens'],
    ['a huge number', chat({ max_tokens: 1e20 }), 'max_tokens'],
  ])('OpenAI %s', async (_name, body, field) => {
    const res = await postJson(app.url, OPENAI_PATH, body)
    expect(res.status).toBe(400)
    expect(res.headers['cache-control']).toBe('no-store')
    expect(res.headers['content-type']).toMatch(/^application\/json/)
    expectOpenAIError(res.json, field, 'integer_above_max_value')
    expect(res.json.error.message).toContain(`${field}: must be <= 4096`)
    expect(app.events).toEqual([
      {
        timestamp: expect.any(String),
        event_type: 'security_violation',
        provider: 'openai',
        ip: '127.0.0.1',
        result: 'max_tokens_exceeded',
        details: {
          code: 'GH_RG_MAX_TOKENS_EXCEEDED',
          status: 400,
          field,
          limit: 4096,
          method: 'POST',
          path: OPENAI_PATH,
          endpoint: 'openai.chat',
        },
      },
    ])
  })

  it('OpenAI responses max_output_tokens', async () => {
    const res = await postJson(app.url, '/v1/responses', {
      model: 'gpt-4.1',
      input: 'x',
      max_output_tokens: 5000,
    })
    expect(res.status).toBe(400)
    expectOpenAIError(res.json, 'max_output_tokens', 'integer_above_max_value')
    expect(app.events[0]!.details).toMatchObject({
      field: 'max_output_tokens',
      endpoint: 'openai.responses',
    })
  })

  it('Anthropic max_tokens', async () => {
    const res = await postJson(app.url, CLAUDE_PATH, claude({ max_tokens: 8192 }))
    expect(res.status).toBe(400)
    expect(res.headers['cache-control']).toBe('no-store')
    expectClaudeError(res.json)
    expect(res.json.error.message).toBe('max_tokens: must be <= 4096 (got 8192)')
    expect(app.events[0]).toMatchObject({
      event_type: 'security_violation',
      provider: 'claude',
      result: 'max_tokens_exceeded',
      details: {
        code: 'GH_RG_MAX_TOKENS_EXCEEDED',
        field: 'max_tokens',
        limit: 4096,
        endpoint: 'claude.messages',
      },
    })
  })

  it('Anthropic message batches: every request is capped', async () => {
    const res = await postJson(app.url, '/v1/messages/batches', {
      requests: [
        { custom_id: 'a', params: claude() },
        { custom_id: 'b', params: claude({ max_tokens: 64_000 }) },
      ],
    })
    expect(res.status).toBe(400)
    expectClaudeError(res.json)
    expect(res.json.error.message).toContain('requests[1].params.max_tokens')
    expect(app.events[0]!.details).toMatchObject({
      field: 'requests[1].params.max_tokens',
      endpoint: 'claude.batches',
    })
  })

  it.each<[string, Record<string, unknown>, string]>([
    [
      'camelCase',
      gemini({ generationConfig: { maxOutputTokens: 8192 } }),
      'generationConfig.maxOutputTokens',
    ],
    [
      'snake_case',
      gemini({ generation_config: { max_output_tokens: 8192 } }),
      'generation_config.max_output_tokens',
    ],
    [
      'as a proto3 string',
      gemini({ generationConfig: { maxOutputTokens: '99999' } }),
      'generationConfig.maxOutputTokens',
    ],
  ])('Gemini %s', async (_name, body, field) => {
    const res = await postJson(app.url, GEMINI_PATH, body)
    expect(res.status).toBe(400)
    expectGeminiError(res.json, 400)
    expect(res.json.error.message).toContain(`${field}: must be <= 4096`)
    expect(app.events[0]).toMatchObject({
      provider: 'gemini',
      result: 'max_tokens_exceeded',
      details: { field },
    })
  })

  it('caps endpoints it has no schema for', async () => {
    for (const path of ['/v1/messages/some_future_endpoint', '/claude/v1/other', '/v1/unknown']) {
      const res = await postJson(app.url, path, { model: 'x', max_tokens: 10_000 })
      expect(res.status).toBe(400)
      expect(JSON.stringify(res.json)).toContain('max_tokens: must be <= 4096')
    }
    expect(app.events.map((e) => e.details?.endpoint)).toEqual(['generic', 'generic', 'generic'])
  })

  it('does not let stray slashes skip the schema', async () => {
    const res = await postJson(app.url, '/v1//chat/completions/', { model: 'x', max_tokens: 10 })
    expect(res.status).toBe(400)
    expectOpenAIError(res.json, 'messages', 'missing_required_parameter')
    expect(app.events[0]!.details).toMatchObject({ endpoint: 'openai.chat' })
  })

  it("uses OpenAI's shape and Gemini's caps on Gemini's OpenAI-compatible endpoint", async () => {
    const res = await postJson(
      app.url,
      '/v1beta/openai/chat/completions',
      chat({ model: 'gemini-2.0-flash', max_tokens: 5000 }),
    )
    expect(res.status).toBe(400)
    expectOpenAIError(res.json, 'max_tokens', 'integer_above_max_value')
    expect(app.events[0]).toMatchObject({ provider: 'gemini', details: { endpoint: 'openai.chat' } })
  })

  it('refuses a max-token value that is not an integer, even where no schema applies', async () => {
    const res = await postJson(app.url, '/v1/unknown', { max_tokens: 'lots' })
    expect(res.status).toBe(400)
    expectOpenAIError(res.json, 'max_tokens', 'invalid_type')
    expect(app.events[0]).toMatchObject({
      result: 'invalid_body',
      details: { code: 'GH_RG_INVALID_BODY', field: 'max_tokens' },
    })
  })

  it('accepts max_tokens: null as "not set" (OpenAI documents it nullable)', async () => {
    const res = await postJson(app.url, OPENAI_PATH, chat({ max_tokens: null }))
    expect(res.status).toBe(200)
  })
})

describe('requestGuard with onOverCap: clamp', () => {
  let app: GuardedApp
  beforeAll(async () => {
    app = await startGuarded({ onOverCap: 'clamp', maxTokens: 1000 })
  })
  afterAll(() => app.close())
  beforeEach(() => {
    app.events.length = 0
  })

  it('lowers the value in the forwarded bytes and changes nothing else', async () => {
    const body =
      '{ "model" : "claude-sonnet-4-5",\n  "max_tokens":   64000 ,\n "messages":[{"role":"user","content":"caf\\u00e9 ☕"}] }'
    const res = await postJson(app.url, CLAUDE_PATH, body)
    expect(res.status).toBe(200)
    const state = res.json.locals.requestGuard
    const forwarded = Buffer.from(state.rawBody.data).toString('utf8')
    expect(forwarded).toBe(body.replace('64000', '1000'))
    expect(state.clamped).toEqual(['max_tokens'])
    expect(state.maxTokens).toBe(1000)
    expect(app.events).toEqual([
      expect.objectContaining({
        event_type: 'security_violation',
        provider: 'claude',
        result: 'max_tokens_clamped',
        details: expect.objectContaining({ code: 'GH_RG_MAX_TOKENS_EXCEEDED', fields: ['max_tokens'] }),
      }),
    ])
  })

  it('clamps Gemini string values and nested batch values', async () => {
    const gText = JSON.stringify(
      gemini({ generation_config: { max_output_tokens: '5000', temperature: 1 } }),
      null,
      2,
    )
    const g = await postJson(app.url, GEMINI_PATH, gText)
    expect(Buffer.from(g.json.locals.requestGuard.rawBody.data).toString()).toBe(
      gText.replace('"5000"', '1000'),
    )
    // Pretty-printed, so a re-serialization would show: the rewrite must be in place.
    const text = JSON.stringify(
      {
        requests: [
          { custom_id: 'a', params: claude({ max_tokens: 10 }) },
          { custom_id: 'b', params: claude({ max_tokens: 9000 }) },
        ],
      },
      null,
      3,
    )
    const b = await postJson(app.url, '/v1/messages/batches', text)
    expect(Buffer.from(b.json.locals.requestGuard.rawBody.data).toString()).toBe(text.replace('9000', '1000'))
    expect(b.json.locals.requestGuard.clamped).toEqual(['requests[1].params.max_tokens'])
  })

  it('still refuses a value of the wrong type', async () => {
    const res = await postJson(app.url, OPENAI_PATH, chat({ max_tokens: true }))
    expect(res.status).toBe(400)
  })
})
