import http from 'node:http'
import express, { type RequestHandler } from 'express'
import { gatehouseLocals, type Logger } from '@gatehouse/core'
import { collectEvents, createTestApp, listen } from '@gatehouse/testing'
import { requestGuard } from '@gatehouse/request-guard'
import {
  GEMINI_PATH,
  chat,
  claude,
  fakeSecret,
  gemini,
  postJson,
  send,
  startGuarded,
  type GuardedApp,
  useGuarded,
} from './helpers'

const OPENAI_PATH = '/v1/chat/completions'
const CLAUDE_PATH = '/v1/messages'

/** The provider-native error shapes of SPEC §3, checked exactly (no extra keys). */
function expectOpenAIError(json: unknown, param: string | null, code?: string | null): void {
  expect(json).toEqual({
    error: {
      message: expect.any(String),
      type: 'invalid_request_error',
      param,
      code: code === undefined ? expect.anything() : code,
    },
  })
}
function expectClaudeError(json: unknown, type = 'invalid_request_error'): void {
  expect(json).toEqual({ type: 'error', error: { type, message: expect.any(String) } })
}
function expectGeminiError(json: unknown, code: number, status = 'INVALID_ARGUMENT'): void {
  expect(json).toEqual({ error: { code, message: expect.any(String), status } })
}

describe('requestGuard with default options: accepts valid bodies', () => {
  const app = useGuarded()
  it.each<[string, string, Record<string, unknown>, string]>([
    [
      'OpenAI chat',
      OPENAI_PATH,
      chat({ max_tokens: 4096, temperature: 0.2, stream: true, stream_options: { include_usage: true } }),
      'openai.chat',
    ],
    [
      'OpenAI chat, content parts and tools',
      OPENAI_PATH,
      chat({
        messages: [
          { role: 'developer', content: 'be brief' },
          {
            role: 'user',
            content: [
              { type: 'text', text: 'hi' },
              { type: 'image_url', image_url: { url: 'https://example.com/a.png' } },
            ],
          },
          {
            role: 'assistant',
            content: null,
            tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }],
          },
          { role: 'tool', tool_call_id: 'c1', content: 'ok' },
        ],
        tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
        tool_choice: 'auto',
        stop: ['\n'],
        brand_new_field: { anything: true },
      }),
      'openai.chat',
    ],
    [
      'OpenAI completions',
      '/v1/completions',
      { model: 'gpt-3.5-turbo-instruct', prompt: 'Once', max_tokens: 0, echo: true },
      'openai.completions',
    ],
    [
      'OpenAI embeddings',
      '/v1/embeddings',
      { model: 'text-embedding-3-small', input: ['a', 'b'] },
      'openai.embeddings',
    ],
    [
      'OpenAI responses',
      '/v1/responses',
      { model: 'gpt-4.1', input: 'hi', max_output_tokens: 100 },
      'openai.responses',
    ],
    [
      'Anthropic messages',
      CLAUDE_PATH,
      claude({
        system: [{ type: 'text', text: 'be brief', cache_control: { type: 'ephemeral' } }],
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'hi' },
              { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AA==' } },
            ],
          },
          { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'f', input: {} }] },
          {
            role: 'user',
            content: [
              { type: 'tool_result', tool_use_id: 't1', content: 'ok' },
              { type: 'future_block_type' },
            ],
          },
        ],
        temperature: 1,
        top_k: 5,
        stop_sequences: ['END'],
        metadata: { user_id: 'u1' },
        tools: [{ name: 'f', input_schema: { type: 'object' } }],
        tool_choice: { type: 'auto' },
        thinking: { type: 'enabled', budget_tokens: 512 },
      }),
      'claude.messages',
    ],
    [
      'Anthropic count_tokens',
      '/v1/messages/count_tokens',
      { model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: 'x' }] },
      'claude.count_tokens',
    ],
    ['Anthropic via /claude prefix', '/claude/v1/messages', claude(), 'claude.messages'],
    [
      'Gemini generateContent',
      GEMINI_PATH,
      gemini({ generationConfig: { maxOutputTokens: 2048, temperature: 1 } }),
      'gemini.generate',
    ],
    [
      'Gemini stream',
      '/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse',
      gemini(),
      'gemini.generate',
    ],
    ['unknown provider path', '/v1/unknown', { anything: 1 }, 'generic'],
  ])('%s', async (_name, path, body, endpoint) => {
    const res = await postJson(app.url, path, body)
    expect(res.status).toBe(200)
    expect(res.json.ok).toBe(true)
    const state = res.json.locals.requestGuard
    expect(state.endpoint).toBe(endpoint)
    expect(state.reserialized).toBe(false)
    expect(Buffer.from(state.rawBody.data).toString('utf8')).toBe(JSON.stringify(body))
    expect(app.events).toEqual([])
  })

  it('accepts application/*+json and an explicit utf-8 charset', async () => {
    for (const type of [
      'application/vnd.api+json',
      'application/json; charset=UTF-8',
      'application/json;charset="utf-8"',
    ]) {
      const res = await postJson(app.url, OPENAI_PATH, chat(), { 'content-type': type })
      expect(res.status).toBe(200)
    }
  })

  it('lets GET requests without a body through untouched', async () => {
    const res = await send(app.url, { method: 'GET', path: '/v1/models' })
    expect(res.status).toBe(200)
    expect(res.json.locals).toBeNull()
  })

  it('records the largest requested max-token value for later layers', async () => {
    const res = await postJson(app.url, OPENAI_PATH, chat({ max_tokens: 100, max_completion_tokens: 300 }))
    expect(res.json.locals.requestGuard.maxTokens).toBe(300)
    expect(res.json.locals.provider).toBe('openai')
  })
})

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

describe('requestGuard with default options: body structure', () => {
  const app = useGuarded()
  it.each<[string, string, number, string, string]>([
    [
      '__proto__ at the top',
      '{"__proto__":{"admin":true},"model":"x"}',
      400,
      'GH_RG_FORBIDDEN_KEY',
      '__proto__',
    ],
    [
      '__proto__ spelled with an escape',
      '{"model":"x","\\u005f_proto__":{}}',
      400,
      'GH_RG_FORBIDDEN_KEY',
      '__proto__',
    ],
    [
      '__proto__ nested',
      '{"model":"x","messages":[{"role":"user","content":"x","__proto__":{}}]}',
      400,
      'GH_RG_FORBIDDEN_KEY',
      'messages[0].__proto__',
    ],
    [
      'constructor.prototype',
      '{"model":"x","constructor":{"prototype":{"polluted":1}}}',
      400,
      'GH_RG_FORBIDDEN_KEY',
      'constructor.prototype',
    ],
    [
      'a duplicate max_tokens',
      '{"model":"x","max_tokens":10,"messages":[],"max_tokens":100000}',
      400,
      'GH_RG_DUPLICATE_KEY',
      'max_tokens',
    ],
    [
      'a duplicate key through an escape',
      '{"model":"x","max_tokens":10,"max_\\u0074okens":100000}',
      400,
      'GH_RG_DUPLICATE_KEY',
      'max_tokens',
    ],
  ])('refuses %s', async (_name, body, status, code, field) => {
    const res = await postJson(app.url, OPENAI_PATH, body)
    expect(res.status).toBe(status)
    expectOpenAIError(res.json, field, null)
    expect(app.events[0]).toMatchObject({ result: code.slice(6).toLowerCase(), details: { code, field } })
  })

  it('allows a key named constructor or prototype on its own', async () => {
    const res = await postJson(app.url, '/v1/unknown', {
      constructor: 1,
      prototype: { a: 1 },
      x: { constructor: 'y' },
    })
    expect(res.status).toBe(200)
  })

  it('refuses nesting deeper than maxDepth (400) and too many entries (413)', async () => {
    const deep = `{"model":"x","input":${'['.repeat(70)}${']'.repeat(70)}}`
    const deepRes = await postJson(app.url, '/v1/embeddings', deep)
    expect(deepRes.status).toBe(400)
    expectOpenAIError(deepRes.json, expect.stringMatching(/^input\[0\]\[0\]/) as unknown as string, null)
    expect(app.events[0]).toMatchObject({
      result: 'too_deep',
      details: { code: 'GH_RG_TOO_DEEP', limit: 64 },
    })

    const wide = `{"model":"x","input":[${Array(100_001).fill('1').join(',')}]}`
    const wideRes = await postJson(app.url, '/v1/embeddings', wide)
    expect(wideRes.status).toBe(413)
    expectOpenAIError(wideRes.json, 'input', 'array_above_max_length')
    expect(app.events[1]).toMatchObject({
      result: 'too_many_elements',
      details: { code: 'GH_RG_TOO_MANY_ELEMENTS', field: 'input', limit: 100_000, status: 413 },
    })
  })

  it.each<[string, string]>([
    ['an array', '[{"model":"x"}]'],
    ['null', 'null'],
    ['a string', '"hello"'],
    ['a number', '4096'],
  ])('refuses a body that is %s (400)', async (_name, body) => {
    const res = await postJson(app.url, CLAUDE_PATH, body)
    expect(res.status).toBe(400)
    expectClaudeError(res.json)
    expect(res.json.error.message).toBe('the request body must be a JSON object')
    expect(app.events[0]).toMatchObject({
      result: 'not_an_object',
      details: { code: 'GH_RG_NOT_AN_OBJECT' },
    })
  })

  it.each<[string, Buffer, string]>([
    ['empty', Buffer.alloc(0), 'the request body is empty'],
    [
      'a byte order mark',
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(gemini()))]),
      'the request body starts with a byte order mark',
    ],
    [
      'invalid UTF-8',
      Buffer.concat([Buffer.from('{"contents":[],"x":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]),
      'the request body is not valid UTF-8',
    ],
    [
      'truncated JSON',
      Buffer.from('{"contents":[{"parts":[{"text":"hi"}]}'),
      'the request body is not valid JSON',
    ],
    ['a trailing comma', Buffer.from('{"contents":[],}'), 'the request body is not valid JSON'],
  ])('refuses a body that is %s as malformed (400)', async (_name, body, message) => {
    const res = await send(app.url, {
      path: GEMINI_PATH,
      headers: { 'content-type': 'application/json', 'content-length': body.length },
      body,
    })
    expect(res.status).toBe(400)
    expectGeminiError(res.json, 400)
    expect(res.json.error.message).toBe(message)
    expect(app.events[0]).toMatchObject({
      provider: 'gemini',
      result: 'malformed_json',
      details: { code: 'GH_RG_MALFORMED_JSON' },
    })
  })
})

describe('requestGuard with default options: content type and encoding (415)', () => {
  const app = useGuarded()
  it.each<[string, Record<string, string>, string]>([
    ['no Content-Type', {}, 'GH_RG_UNSUPPORTED_MEDIA_TYPE'],
    ['text/plain', { 'content-type': 'text/plain' }, 'GH_RG_UNSUPPORTED_MEDIA_TYPE'],
    ['form data', { 'content-type': 'application/x-www-form-urlencoded' }, 'GH_RG_UNSUPPORTED_MEDIA_TYPE'],
    [
      'a Latin-1 charset',
      { 'content-type': 'application/json; charset=iso-8859-1' },
      'GH_RG_UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'gzip',
      { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      'GH_RG_UNSUPPORTED_ENCODING',
    ],
  ])('refuses %s', async (_name, headers, code) => {
    const body = JSON.stringify(claude())
    const res = await send(app.url, {
      path: CLAUDE_PATH,
      headers: { ...headers, 'content-length': Buffer.byteLength(body) },
      body,
    })
    expect(res.status).toBe(415)
    expect(res.headers['cache-control']).toBe('no-store')
    expect(res.headers.connection).toBe('close')
    expectClaudeError(res.json)
    expect(app.events[0]).toMatchObject({
      result: code.slice(6).toLowerCase(),
      details: { code, status: 415 },
    })
  })

  it('answers 415 in OpenAI shape with its unsupported_media_type code', async () => {
    const res = await send(app.url, {
      path: OPENAI_PATH,
      headers: { 'content-type': 'text/plain' },
      body: 'hi',
    })
    expect(res.status).toBe(415)
    expectOpenAIError(res.json, null, 'unsupported_media_type')
  })
})

describe('requestGuard with default options: methods', () => {
  const app = useGuarded()
  it('refuses a GET that carries a body (400)', async () => {
    const res = await send(app.url, {
      method: 'GET',
      path: '/v1/models',
      headers: { 'content-type': 'application/json', 'content-length': 2 },
      body: '{}',
    })
    expect(res.status).toBe(400)
    expectOpenAIError(res.json, null, null)
    expect(res.json.error.message).toBe('a GET request must not have a body')
    expect(app.events[0]).toMatchObject({
      result: 'unexpected_body',
      details: { code: 'GH_RG_UNEXPECTED_BODY', method: 'GET' },
    })
  })

  it('checks PUT bodies for structure and caps but not against the POST schema', async () => {
    const ok = await send(app.url, {
      method: 'PUT',
      path: OPENAI_PATH,
      headers: { 'content-type': 'application/json' },
      body: '{"x":1}',
    })
    expect(ok.status).toBe(200)
    const capped = await send(app.url, {
      method: 'PATCH',
      path: OPENAI_PATH,
      headers: { 'content-type': 'application/json' },
      body: '{"max_tokens":9000}',
    })
    expect(capped.status).toBe(400)
  })
})

describe('requestGuard body size', () => {
  let app: GuardedApp
  beforeAll(async () => {
    app = await startGuarded({ bodyLimit: '64kb' })
  })
  afterAll(() => app.close())
  beforeEach(() => {
    app.events.length = 0
  })

  it('refuses a declared Content-Length over the limit before reading any of it (413)', async () => {
    // Declares 50 MB and sends none of it: only an up-front check can answer.
    const res = await send(app.url, {
      path: CLAUDE_PATH,
      headers: { 'content-type': 'application/json', 'content-length': 50 * 1024 * 1024 },
      chunks: [],
      chunkDelayMs: 0,
    }).catch((e: unknown) => e)
    const r = res as Awaited<ReturnType<typeof send>>
    expect(r.status).toBe(413)
    expect(r.headers.connection).toBe('close')
    expect(r.headers['cache-control']).toBe('no-store')
    expectClaudeError(r.json, 'request_too_large')
    expect(app.events[0]).toMatchObject({
      event_type: 'security_violation',
      provider: 'claude',
      result: 'body_too_large',
      details: { code: 'GH_RG_BODY_TOO_LARGE', status: 413, limit: 65536 },
    })
  })

  it('stops reading a chunked body once it passes the limit (413)', async () => {
    const chunk = Buffer.alloc(16 * 1024, 0x20)
    const chunks = [Buffer.from('{"model":"x","pad":"'), ...Array.from({ length: 200 }, () => chunk)]
    const res = await send(app.url, {
      path: OPENAI_PATH,
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      chunks,
      chunkDelayMs: 2,
    })
    expect(res.status).toBe(413)
    expect(res.headers.connection).toBe('close')
    expectOpenAIError(res.json, null, 'request_too_large')
    expect(res.chunksSent).toBeLessThan(chunks.length)
    expect(app.events[0]).toMatchObject({
      result: 'body_too_large',
      details: { code: 'GH_RG_BODY_TOO_LARGE' },
    })
  })

  it('answers 413 in Gemini shape', async () => {
    const body = JSON.stringify(gemini({ pad: 'x'.repeat(70 * 1024) }))
    const res = await postJson(app.url, GEMINI_PATH, body)
    expect(res.status).toBe(413)
    expectGeminiError(res.json, 413)
  })

  it('accepts a body just under the limit', async () => {
    const base = JSON.stringify(chat({ pad: '' }))
    const body = JSON.stringify(chat({ pad: 'x'.repeat(64 * 1024 - base.length) }))
    expect(Buffer.byteLength(body)).toBe(64 * 1024)
    const res = await postJson(app.url, OPENAI_PATH, body)
    expect(res.status).toBe(200)
  })
})

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

describe('requestGuard behind another body parser', () => {
  it('checks a body express.json() already parsed, and re-serializes it', async () => {
    const { events, onEvent } = collectEvents()
    const app = express()
    app.use(express.json({ limit: '1mb' }))
    app.use(requestGuard({ onEvent }))
    app.use(((req, res) => {
      const state = gatehouseLocals(res).requestGuard!
      res.json({
        body: req.body as unknown,
        raw: state.rawBody.toString('utf8'),
        reserialized: state.reserialized,
        length: req.headers['content-length'],
      })
    }) as RequestHandler)
    const server = await listen(app)
    try {
      const text = '{ "model": "gpt-4o",   "messages": [{"role":"user","content":"hi"}], "max_tokens": 50 }'
      const ok = await postJson(server.url, OPENAI_PATH, text)
      expect(ok.status).toBe(200)
      expect(ok.json).toEqual({
        body: JSON.parse(text),
        raw: JSON.stringify(JSON.parse(text)),
        reserialized: true,
        length: String(Buffer.byteLength(JSON.stringify(JSON.parse(text)))),
      })
      const over = await postJson(server.url, OPENAI_PATH, chat({ max_tokens: 5000 }))
      expect(over.status).toBe(400)
      expectOpenAIError(over.json, 'max_tokens', 'integer_above_max_value')
      const polluted = await postJson(
        server.url,
        OPENAI_PATH,
        '{"model":"x","messages":[],"__proto__":{"x":1}}',
      )
      expect(polluted.status).toBe(400)
      expectOpenAIError(polluted.json, '__proto__', null)
      const deep = await postJson(
        server.url,
        '/v1/embeddings',
        `{"model":"x","input":${'['.repeat(80)}${']'.repeat(80)}}`,
      )
      expect(deep.status).toBe(400)
      const notObject = await postJson(server.url, OPENAI_PATH, '[1]')
      expect(notObject.status).toBe(400)
      expect(events.map((e) => e.result)).toEqual([
        'max_tokens_exceeded',
        'forbidden_key',
        'too_deep',
        'not_an_object',
      ])
    } finally {
      await server.close()
    }
  })

  it('uses the exact bytes that express.raw() kept', async () => {
    const app = express()
    app.use(express.raw({ type: 'application/json' }))
    app.use(requestGuard())
    app.use(((_req, res) => {
      const state = gatehouseLocals(res).requestGuard!
      res.json({ raw: state.rawBody.toString('utf8'), reserialized: state.reserialized })
    }) as RequestHandler)
    const server = await listen(app)
    try {
      const text = '{"model":"gpt-4o" ,"messages":[{"role":"user","content":"hi"}],"max_tokens":50}\n'
      const res = await postJson(server.url, OPENAI_PATH, text)
      expect(res.json).toEqual({ raw: text, reserialized: false })
      expect((await postJson(server.url, OPENAI_PATH, chat({ max_tokens: 9999 }))).status).toBe(400)
    } finally {
      await server.close()
    }
  })

  it('passes a 500 to the error handler when a body was consumed and nothing was kept', async () => {
    const errors: string[] = []
    const logger: Logger = {
      error: (m) => void errors.push(m),
      warn: () => undefined,
      info: () => undefined,
      debug: () => undefined,
    }
    const swallow: RequestHandler = (req, _res, next) => {
      req.on('end', () => next())
      req.resume()
    }
    const server = await listen(createTestApp(swallow, requestGuard({ logger })))
    try {
      const res = await postJson(server.url, OPENAI_PATH, chat())
      expect(res.status).toBe(500)
      expect(res.json).toEqual({
        code: 'GH_RG_BODY_UNAVAILABLE',
        message: expect.stringContaining('consumed before the guard'),
      })
      expect(errors[0]).toContain('mount the guard before body parsers')
    } finally {
      await server.close()
    }
  })
})

describe('requestGuard events', () => {
  it('carries the request id and client key id that earlier layers set', async () => {
    const identify: RequestHandler = (_req, res, next) => {
      const locals = gatehouseLocals(res)
      locals.requestId = 'req-123'
      locals.clientKeyId = 'key_0a1b2c3d'
      next()
    }
    const app = await startGuarded({}, identify)
    try {
      await postJson(app.url, CLAUDE_PATH, claude({ max_tokens: 10_000 }))
      expect(app.events[0]).toMatchObject({ request_id: 'req-123', user_id: 'key_0a1b2c3d', ip: '127.0.0.1' })
    } finally {
      await app.close()
    }
  })

  it('still refuses, and logs, when the onEvent handler throws', async () => {
    const errors: string[] = []
    const logger: Logger = {
      error: (m) => void errors.push(m),
      warn: () => undefined,
      info: () => undefined,
      debug: () => undefined,
    }
    const onEvent = (): void => {
      throw new Error('sink down')
    }
    const server = await listen(createTestApp(requestGuard({ onEvent, logger })))
    try {
      const res = await postJson(server.url, CLAUDE_PATH, claude({ max_tokens: 10_000 }))
      expect(res.status).toBe(400)
      expectClaudeError(res.json)
      expect(errors).toEqual(['@gatehouse/request-guard: onEvent handler threw'])
    } finally {
      await server.close()
    }
  })

  it('skips schema checks with validateSchema: false but keeps every other check', async () => {
    const app = await startGuarded({ validateSchema: false })
    try {
      expect((await postJson(app.url, OPENAI_PATH, { messages: 'not even an array' })).status).toBe(200)
      expect((await postJson(app.url, OPENAI_PATH, { max_tokens: 5000 })).status).toBe(400)
      expect((await postJson(app.url, OPENAI_PATH, '{"a":1,"a":2}')).status).toBe(400)
    } finally {
      await app.close()
    }
  })
})

describe('requestGuard failure handling', () => {
  const quietLogger = (errors: string[]): Logger => ({
    error: (m) => void errors.push(m),
    warn: () => undefined,
    info: () => undefined,
    debug: () => undefined,
  })

  it('turns an unexpected failure into next(err) with GH_RG_INTERNAL, logged, nothing forwarded', async () => {
    const errors: string[] = []
    // The guard is the first to read readableEnded: make that one read fail, as a bug would.
    const broken: RequestHandler = (req, _res, next) => {
      Object.defineProperty(req, 'readableEnded', {
        configurable: true,
        get() {
          delete (req as { readableEnded?: boolean }).readableEnded
          throw new Error('broken request object')
        },
      })
      next()
    }
    const server = await listen(createTestApp(broken, requestGuard({ logger: quietLogger(errors) })))
    try {
      const res = await postJson(server.url, OPENAI_PATH, chat())
      expect(res.status).toBe(500)
      expect(res.json).toEqual({
        code: 'GH_RG_INTERNAL',
        message: '@gatehouse/request-guard: the request body could not be checked',
      })
      expect(errors).toEqual(['@gatehouse/request-guard: internal error'])
    } finally {
      await server.close()
    }
  })

  it('still answers when the logger itself throws', async () => {
    const throwing: Logger = {
      error: () => {
        throw new Error('log sink down')
      },
      warn: () => undefined,
      info: () => undefined,
      debug: () => {
        throw new Error('log sink down')
      },
    }
    const server = await listen(createTestApp(requestGuard({ logger: throwing })))
    try {
      const res = await postJson(server.url, CLAUDE_PATH, claude({ max_tokens: 99_999 }))
      expect(res.status).toBe(400)
      expectClaudeError(res.json)
    } finally {
      await server.close()
    }
  })

  it('treats a string that express.json({ strict: false }) produced as a JSON value, not as text', async () => {
    const { events, onEvent } = collectEvents()
    const server = await listen(createTestApp(express.json({ strict: false }), requestGuard({ onEvent })))
    try {
      const res = await postJson(server.url, OPENAI_PATH, JSON.stringify(JSON.stringify(chat())))
      expect(res.status).toBe(400)
      expectOpenAIError(res.json, null, 'invalid_type')
      expect(events[0]).toMatchObject({ result: 'not_an_object' })
    } finally {
      await server.close()
    }
  })

  it('checks a body that arrives in pieces exactly as one that arrives with the headers', async () => {
    // A body already parsed when the guard runs is read from the stream's buffer at once; one still
    // arriving is read from 'data' events. Both must see the same bytes and give the same answers.
    // Behind an asynchronous layer (as in the gateway) the whole body is parsed before the guard runs.
    const later: RequestHandler = (_req, _res, next) => void setImmediate(next)
    for (const app of [
      await startGuarded({ providers: { openai: { maxTokens: 100 } } }),
      await startGuarded({ providers: { openai: { maxTokens: 100 } } }, later),
    ]) {
      const post = (text: string, pieces: number) =>
        new Promise<{
          status: number
          json: { locals?: { requestGuard?: { rawBody: { data: number[] } } } }
        }>((resolve, reject) => {
          const url = new URL(OPENAI_PATH, app.url)
          const bytes = Buffer.from(text)
          const req = http.request(
            {
              host: url.hostname,
              port: url.port,
              path: url.pathname,
              method: 'POST',
              agent: false,
              headers: { 'content-type': 'application/json', 'content-length': bytes.length },
            },
            (res) => {
              let body = ''
              res.setEncoding('utf8')
              res.on('data', (d: string) => (body += d))
              res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(body) as never }))
            },
          )
          req.on('error', reject)
          const size = Math.ceil(bytes.length / pieces)
          const write = (i: number): void => {
            if (i >= bytes.length) return void req.end()
            req.write(bytes.subarray(i, i + size))
            setTimeout(() => write(i + size), 30)
          }
          write(0)
        })
      try {
        const ok = JSON.stringify(chat({ max_tokens: 50, note: 'é ✓' }))
        const whole = await post(ok, 1)
        const pieces = await post(ok, 4)
        expect([whole.status, pieces.status]).toEqual([200, 200])
        expect(Buffer.from(whole.json.locals!.requestGuard!.rawBody.data).toString()).toBe(ok)
        expect(Buffer.from(pieces.json.locals!.requestGuard!.rawBody.data).toString()).toBe(ok)
        const over = JSON.stringify(chat({ max_tokens: 500 }))
        expect([(await post(over, 1)).status, (await post(over, 3)).status]).toEqual([400, 400])
        expect([(await post('{"model":', 1)).status, (await post('{"model":', 2)).status]).toEqual([400, 400])
      } finally {
        await app.close()
      }
    }
  })

  it('survives a client that disconnects mid-body, without an event', async () => {
    const app = await startGuarded()
    try {
      const url = new URL(OPENAI_PATH, app.url)
      await new Promise<void>((resolve) => {
        const req = http.request({
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json', 'content-length': 1000 },
        })
        req.on('error', () => resolve())
        req.write('{"model":"gpt-4o","messages":[')
        setTimeout(() => {
          req.destroy()
          resolve()
        }, 50).unref()
      })
      await new Promise((r) => setTimeout(r, 50))
      expect((await postJson(app.url, OPENAI_PATH, chat())).status).toBe(200)
      expect(app.events).toEqual([])
    } finally {
      await app.close()
    }
  })
})
