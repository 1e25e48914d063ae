import { type RequestHandler } from 'express'
import { gatehouseLocals, type Logger } from '@gatehouse/core'
import { createTestApp, listen } from '@gatehouse/testing'
import { requestGuard } from '@gatehouse/request-guard'
import {
  CLAUDE_PATH,
  GEMINI_PATH,
  OPENAI_PATH,
  chat,
  claude,
  expectClaudeError,
  expectOpenAIError,
  gemini,
  postJson,
  send,
  startGuarded,
  useGuarded,
} from './helpers'

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
