import {
  CLAUDE_PATH,
  GEMINI_PATH,
  OPENAI_PATH,
  chat,
  claude,
  expectClaudeError,
  expectGeminiError,
  expectOpenAIError,
  fakeSecret,
  gemini,
  postJson,
  useGuarded,
} from './helpers'

describe('requestGuard with default options: schema violations (400, names the field)', () => {
  const app = useGuarded()
  it.each<[string, string, Record<string, unknown>, string, string | null, string]>([
    [
      'missing model',
      OPENAI_PATH,
      { messages: [{ role: 'user', content: 'x' }] },
      'model',
      'missing_required_parameter',
      'model: is required',
    ],
    [
      'empty messages',
      OPENAI_PATH,
      chat({ messages: [] }),
      'messages',
      'empty_array',
      'messages: must not be empty',
    ],
    [
      'content of the wrong type',
      OPENAI_PATH,
      chat({ messages: [{ role: 'user', content: 42 }] }),
      'messages[0].content',
      'invalid_type',
      'messages[0].content: must be a string or an array or null',
    ],
    [
      'unknown role',
      OPENAI_PATH,
      chat({ messages: [{ role: 'wizard', content: 'x' }] }),
      'messages[0].role',
      'invalid_value',
      'messages[0].role: must be one of',
    ],
    [
      'text part without text',
      OPENAI_PATH,
      chat({ messages: [{ role: 'user', content: [{ type: 'text' }] }] }),
      'messages[0].content[0].text',
      'missing_required_parameter',
      'is required',
    ],
    [
      'temperature above 2',
      OPENAI_PATH,
      chat({ temperature: 2.5 }),
      'temperature',
      'decimal_above_max_value',
      'temperature: must be <= 2',
    ],
    [
      'negative max_tokens',
      OPENAI_PATH,
      chat({ max_tokens: -1 }),
      'max_tokens',
      'integer_below_min_value',
      'max_tokens: must be >= 1',
    ],
    [
      'fractional max_tokens',
      OPENAI_PATH,
      chat({ max_tokens: 10.5 }),
      'max_tokens',
      'invalid_type',
      'max_tokens: must be an integer or null',
    ],
    [
      'stream as a string',
      OPENAI_PATH,
      chat({ stream: 'yes' }),
      'stream',
      'invalid_type',
      'stream: must be a boolean or null',
    ],
    [
      'five stop sequences',
      OPENAI_PATH,
      chat({ stop: ['a', 'b', 'c', 'd', 'e'] }),
      'stop',
      'array_above_max_length',
      'stop: must have at most 4 items',
    ],
    [
      'tool without a function',
      OPENAI_PATH,
      chat({ tools: [{ type: 'function' }] }),
      'tools[0].function',
      'missing_required_parameter',
      'is required',
    ],
    [
      'embeddings without input',
      '/v1/embeddings',
      { model: 'e' },
      'input',
      'missing_required_parameter',
      'input: is required',
    ],
  ])('OpenAI: %s', async (_name, path, body, param, code, message) => {
    const res = await postJson(app.url, path, body)
    expect(res.status).toBe(400)
    expect(res.headers['cache-control']).toBe('no-store')
    expectOpenAIError(res.json, param, code)
    expect(res.json.error.message).toContain(message)
    expect(app.events).toHaveLength(1)
    expect(app.events[0]).toMatchObject({
      result: 'invalid_body',
      details: { code: 'GH_RG_INVALID_BODY', status: 400, field: param },
    })
  })
})

describe('requestGuard with default options: schema violations of Anthropic and Gemini bodies', () => {
  const app = useGuarded()
  it.each<[string, Record<string, unknown>, string]>([
    ['missing max_tokens', { model: 'claude-sonnet-4-5', messages: [] }, 'max_tokens: is required'],
    [
      'system role in messages',
      claude({ messages: [{ role: 'system', content: 'x' }] }),
      'messages[0].role: must be one of "user", "assistant"',
    ],
    ['temperature above 1', claude({ temperature: 1.5 }), 'temperature: must be <= 1'],
    [
      'tool_use without input',
      claude({ messages: [{ role: 'assistant', content: [{ type: 'tool_use', id: 'a', name: 'f' }] }] }),
      'messages[0].content[0].input: is required',
    ],
    ['system as a number', claude({ system: 7 }), 'system: must be a string or an array'],
  ])('Anthropic: %s', async (_name, body, message) => {
    const res = await postJson(app.url, CLAUDE_PATH, body)
    expect(res.status).toBe(400)
    expectClaudeError(res.json)
    expect(res.json.error.message).toBe(message)
    expect(app.events[0]).toMatchObject({ provider: 'claude', result: 'invalid_body' })
  })

  it.each<[string, Record<string, unknown>, string]>([
    ['missing contents', { generationConfig: {} }, 'contents: is required'],
    ['content without parts', { contents: [{ role: 'user' }] }, 'contents[0].parts: is required'],
    [
      'maxOutputTokens not a number',
      gemini({ generationConfig: { maxOutputTokens: 'many' } }),
      'generationConfig.maxOutputTokens: must be an integer',
    ],
    [
      'temperature above 2',
      gemini({ generationConfig: { temperature: 3 } }),
      'generationConfig.temperature: must be <= 2',
    ],
  ])('Gemini: %s', async (_name, body, message) => {
    const res = await postJson(app.url, GEMINI_PATH, body)
    expect(res.status).toBe(400)
    expectGeminiError(res.json, 400)
    expect(res.json.error.message).toBe(message)
    expect(app.events[0]).toMatchObject({ provider: 'gemini', result: 'invalid_body' })
  })

  it('never quotes body content, in the answer or the event', async () => {
    const secret = fakeSecret()
    const bodies: [string, string][] = [
      [OPENAI_PATH, JSON.stringify(chat({ messages: [{ role: secret, content: secret }] }))],
      [OPENAI_PATH, JSON.stringify(chat({ logit_bias: { [secret]: 500 } }))],
      [CLAUDE_PATH, JSON.stringify(claude({ model: secret, max_tokens: 99_999 }))],
      [CLAUDE_PATH, `{"model":"x","note":"${secret}" trailing garbage`],
      [
        OPENAI_PATH,
        JSON.stringify({ [secret]: { [secret]: 1 }, model: 'x', [`${secret}x`]: 1, max_tokens: secret }),
      ],
    ]
    for (const [path, body] of bodies) {
      const res = await postJson(app.url, path, body)
      expect(res.status).toBe(400)
      expect(res.text).not.toContain(secret)
      expect(res.text).not.toContain(secret.slice(14, 30))
    }
    expect(app.events).toHaveLength(bodies.length)
    expect(JSON.stringify(app.events)).not.toContain(secret.slice(14, 30))
  })
})
