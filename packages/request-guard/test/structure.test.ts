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
  send,
  startGuarded,
  type GuardedApp,
  useGuarded,
} from './helpers'

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
