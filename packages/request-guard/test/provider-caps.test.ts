import {
  CLAUDE_PATH,
  GEMINI_PATH,
  OPENAI_PATH,
  chat,
  claude,
  gemini,
  postJson,
  startGuarded,
  type GuardedApp,
} from './helpers'

describe('requestGuard caps per provider and model', () => {
  let app: GuardedApp
  beforeAll(async () => {
    app = await startGuarded({
      maxTokens: 2048,
      providers: {
        claude: {
          maxTokens: 8192,
          models: { 'claude-3-haiku*': 4096, 'claude-opus-4*': 32_000, 'claude-opus-4-1-fast': 1000 },
        },
        gemini: { maxTokens: false },
        openai: { models: { 'GPT-4O*': 16_384, 'gpt-4o-mini*': 1000 } },
      },
    })
  })
  afterAll(() => app.close())

  it.each<[string, string, Record<string, unknown>, number]>([
    ['claude default', CLAUDE_PATH, claude({ max_tokens: 8192 }), 200],
    ['claude over its provider cap', CLAUDE_PATH, claude({ max_tokens: 8193 }), 400],
    [
      'claude haiku pattern',
      CLAUDE_PATH,
      claude({ model: 'claude-3-haiku-20240307', max_tokens: 5000 }),
      400,
    ],
    [
      'claude opus pattern raises the cap',
      CLAUDE_PATH,
      claude({ model: 'claude-opus-4-1', max_tokens: 32_000 }),
      200,
    ],
    [
      'an exact name wins over a pattern',
      CLAUDE_PATH,
      claude({ model: 'claude-opus-4-1-fast', max_tokens: 1001 }),
      400,
    ],
    ['gemini uncapped', GEMINI_PATH, gemini({ generationConfig: { maxOutputTokens: 1_000_000 } }), 200],
    ['openai top-level default', OPENAI_PATH, chat({ model: 'o3', max_completion_tokens: 2049 }), 400],
    ['the longest pattern wins', OPENAI_PATH, chat({ model: 'gpt-4o-mini-2024', max_tokens: 1001 }), 400],
    [
      'patterns match case-insensitively',
      OPENAI_PATH,
      chat({ model: 'gpt-4o-2024-08-06', max_tokens: 16_384 }),
      200,
    ],
  ])('%s', async (_name, path, body, status) => {
    const res = await postJson(app.url, path, body)
    expect(res.status).toBe(status)
  })

  it('names the model cap in the refusal', async () => {
    const res = await postJson(
      app.url,
      CLAUDE_PATH,
      claude({ model: 'claude-3-haiku-20240307', max_tokens: 5000 }),
    )
    expect(res.json.error.message).toBe('max_tokens: must be <= 4096 (got 5000)')
  })

  it('applies the model in a Gemini path', async () => {
    const guarded = await startGuarded({ providers: { gemini: { models: { 'gemini-2.5-pro': 65_536 } } } })
    try {
      const body = gemini({ generationConfig: { maxOutputTokens: 60_000 } })
      expect(
        (await postJson(guarded.url, '/v1beta/models/gemini-2.5-pro:generateContent', body)).status,
      ).toBe(200)
      expect((await postJson(guarded.url, GEMINI_PATH, body)).status).toBe(400)
    } finally {
      await guarded.close()
    }
  })

  it('turns every cap off with maxTokens: false', async () => {
    const guarded = await startGuarded({ maxTokens: false })
    try {
      expect((await postJson(guarded.url, CLAUDE_PATH, claude({ max_tokens: 200_000 }))).status).toBe(200)
    } finally {
      await guarded.close()
    }
  })
})
