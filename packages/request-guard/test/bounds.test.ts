import net from 'node:net'
import { chat, gemini, GEMINI_PATH, postJson, startGuarded, type GuardedApp } from './helpers'

const OPENAI_PATH = '/v1/chat/completions'

/** The bytes the guard would forward, and the estimate it left for the limits. */
function forwarded(res: { json: { locals: { requestGuard: { rawBody: { data: number[] }; inserted: string[] }; tokenEstimate: { promptTokens: number; outputTokens: number } } } }) {
  const raw = Buffer.from(res.json.locals.requestGuard.rawBody.data)
  return { body: JSON.parse(raw.toString('utf8')) as Record<string, unknown>, bytes: raw.length, inserted: res.json.locals.requestGuard.inserted, estimate: res.json.locals.tokenEstimate }
}

describe('output bounds: caps written in, choices held, the estimate the limits reserve', () => {
  let app: GuardedApp
  beforeAll(async () => {
    app = await startGuarded({ providers: { openai: { maxTokens: 1000 }, claude: { maxTokens: 2000 }, gemini: { maxTokens: 3000 } } })
  })
  afterAll(() => app.close())
  beforeEach(() => app.events.splice(0))

  it.each<[string, string, Record<string, unknown>, string, number]>([
    ['OpenAI chat without a cap', OPENAI_PATH, { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }, 'max_completion_tokens', 1000],
    ['OpenAI chat with max_tokens null', OPENAI_PATH, { model: 'gpt-4o', max_tokens: null, messages: [{ role: 'user', content: 'hi' }] }, 'max_tokens', 1000],
    ['OpenAI completions without a cap', '/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'hi' }, 'max_tokens', 1000],
    ['OpenAI responses without a cap', '/v1/responses', { model: 'gpt-4o', input: 'hi' }, 'max_output_tokens', 1000],
    ['Gemini without generationConfig', GEMINI_PATH, { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, 'generationConfig.maxOutputTokens', 3000],
    ['Gemini with a snake_case config', GEMINI_PATH, { contents: [{ role: 'user', parts: [{ text: 'hi' }] }], generation_config: { temperature: 0 } }, 'generation_config.max_output_tokens', 3000],
    ["Gemini's OpenAI endpoint", '/v1beta/openai/chat/completions', { model: 'gemini-2.0-flash', messages: [{ role: 'user', content: 'hi' }] }, 'max_tokens', 3000],
  ])('%s: writes the cap in and reserves it', async (_what, path, body, field, cap) => {
    const res = await postJson(app.url, path, body)
    expect(res.status).toBe(200)
    const f = forwarded(res)
    expect(f.inserted).toEqual([field])
    const value = field.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], f.body)
    expect(value).toBe(cap)
    expect(f.estimate).toEqual({ promptTokens: Math.ceil(f.bytes / 4), outputTokens: cap })
    expect(res.headers).toBeDefined()
  })

  it('forwards a body that sets its own cap byte for byte, and reserves that cap', async () => {
    const text = '{"model":"gpt-4o",  "max_tokens": 300, "messages":[{"role":"user","content":"hi"}]}'
    const res = await postJson(app.url, OPENAI_PATH, text)
    expect(res.status).toBe(200)
    expect(Buffer.from(res.json.locals.requestGuard.rawBody.data).toString('utf8')).toBe(text)
    expect(forwarded(res).estimate).toEqual({ promptTokens: Math.ceil(Buffer.byteLength(text) / 4), outputTokens: 300 })
    expect(forwarded(res).inserted).toEqual([])
  })

  it('reserves no output for embeddings and token counts', async () => {
    const e = await postJson(app.url, '/v1/embeddings', { model: 'text-embedding-3-small', input: 'hi' })
    expect(forwarded(e).estimate.outputTokens).toBe(0)
    const c = await postJson(app.url, '/v1/messages/count_tokens', { model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: 'hi' }] })
    expect(forwarded(c).estimate.outputTokens).toBe(0)
    expect(forwarded(c).inserted).toEqual([])
  })

  it.each<[string, string, Record<string, unknown>, string]>([
    ['n = 128', OPENAI_PATH, chat({ n: 128 }), 'n'],
    ['best_of', '/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'hi', max_tokens: 5, best_of: 5 }, 'best_of'],
    ['candidateCount', GEMINI_PATH, gemini({ generationConfig: { maxOutputTokens: 10, candidateCount: 8 } }), 'generationConfig.candidateCount'],
  ])('refuses %s above maxChoices in the provider shape, naming the field, with an event, forwarding nothing', async (_what, path, body, field) => {
    const res = await postJson(app.url, path, body)
    expect(res.status).toBe(400)
    expect(res.json.locals).toBeUndefined()
    const message = path === GEMINI_PATH ? res.json.error.message : res.json.error.message
    expect(message).toContain(`${field}: must be <= 1`)
    if (path !== GEMINI_PATH) expect(res.json.error).toMatchObject({ param: field, code: 'integer_above_max_value' })
    else expect(res.json.error).toMatchObject({ code: 400, status: 'INVALID_ARGUMENT' })
    expect(app.events).toEqual([expect.objectContaining({ event_type: 'security_violation', result: 'too_many_choices', details: expect.objectContaining({ code: 'GH_RG_TOO_MANY_CHOICES', field, limit: 1 }) })])
  })

  it('multiplies the output bound by the choices allowed', async () => {
    const wide = await startGuarded({ maxChoices: 4, providers: { openai: { maxTokens: 1000 } } })
    try {
      const res = await postJson(wide.url, OPENAI_PATH, { model: 'gpt-4o', n: 3, max_tokens: 200, messages: [{ role: 'user', content: 'hi' }] })
      expect(res.status).toBe(200)
      expect(forwarded(res).estimate.outputTokens).toBe(600)
      const best = await postJson(wide.url, '/v1/completions', { model: 'm', prompt: 'p', n: 2, best_of: 4 })
      // best_of 4 generations, each up to the inserted cap of 1000.
      expect(forwarded(best).estimate.outputTokens).toBe(4000)
    } finally {
      await wide.close()
    }
  })

  it('clamps choices with onOverCap clamp', async () => {
    const clamping = await startGuarded({ onOverCap: 'clamp', maxChoices: 2 })
    try {
      const res = await postJson(clamping.url, OPENAI_PATH, chat({ n: 50, max_completion_tokens: 10 }))
      expect(res.status).toBe(200)
      expect(forwarded(res).body.n).toBe(2)
      expect(forwarded(res).estimate.outputTokens).toBe(20)
    } finally {
      await clamping.close()
    }
  })

  it('walks nested Anthropic batch entries: the bound is summed, a bad one is refused by its path, a missing cap is refused as Anthropic does', async () => {
    const entry = (i: number, params: Record<string, unknown>) => ({ custom_id: `r${i}`, params: { model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: 'hi' }], ...params } })
    const ok = await postJson(app.url, '/v1/messages/batches', { requests: [entry(0, { max_tokens: 100 }), entry(1, { max_tokens: 2000 }), entry(2, { max_tokens: 50 })] })
    expect(ok.status).toBe(200)
    expect(forwarded(ok).estimate.outputTokens).toBe(100 + 2000 + 50)
    const bad = await postJson(app.url, '/v1/messages/batches', { requests: [entry(0, { max_tokens: 100 }), entry(1, { max_tokens: 999_999 })] })
    expect(bad.status).toBe(400)
    expect(bad.json).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } })
    expect(bad.json.error.message).toContain('requests[1].params.max_tokens: must be <= 2000')
    // Anthropic requires max_tokens in every request: the schema refuses one without, or null.
    for (const params of [{}, { max_tokens: null }]) {
      const missing = await postJson(app.url, '/v1/messages/batches', { requests: [entry(0, { max_tokens: 100 }), entry(1, params)] })
      expect(missing.status).toBe(400)
      expect(missing.json.error.message).toMatch(/^requests\[1\]\.params\.max_tokens: /)
    }
  })

  it('checks an absolute-form request line exactly like the origin form', async () => {
    const body = JSON.stringify({ model: 'gpt-4o', n: 5, messages: [{ role: 'user', content: 'hi' }] })
    const u = new URL(app.url)
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(Number(u.port), u.hostname)
      let got = ''
      socket.setEncoding('utf8')
      socket.on('data', (d: string) => (got += d))
      socket.on('error', reject)
      socket.on('close', () => resolve(got))
      socket.write(`POST http://api.openai.com/v1/chat/completions HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
    })
    expect(answer).toMatch(/^HTTP\/1\.1 400 /)
    expect(answer).toContain('n: must be <= 1')
    const fine = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
    const accepted = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(Number(u.port), u.hostname)
      let got = ''
      socket.setEncoding('utf8')
      socket.on('data', (d: string) => (got += d))
      socket.on('error', reject)
      socket.on('close', () => resolve(got))
      socket.write(`POST http://api.openai.com/v1/chat/completions HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(fine)}\r\nConnection: close\r\n\r\n${fine}`)
    })
    expect(accepted).toMatch(/^HTTP\/1\.1 200 /)
    expect(accepted).toContain('"inserted":["max_completion_tokens"]')
    expect(accepted).toContain('"endpoint":"openai.chat"')
  })

  it('writes nothing in with insertCaps off, and still reserves a pessimistic bound', async () => {
    const off = await startGuarded({ insertCaps: false, providers: { claude: { maxTokens: 100 } } })
    try {
      const res = await postJson(off.url, OPENAI_PATH, { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
      expect(forwarded(res).inserted).toEqual([])
      expect(forwarded(res).body).not.toHaveProperty('max_completion_tokens')
      expect(forwarded(res).estimate.outputTokens).toBe(4096)
    } finally {
      await off.close()
    }
  })

  it('refuses an unmetered background response, unless allowed', async () => {
    const body = { model: 'gpt-4o', input: 'hi', max_output_tokens: 10, background: true }
    const res = await postJson(app.url, '/v1/responses', body)
    expect(res.status).toBe(400)
    expect(res.json.error).toMatchObject({ param: 'background', code: 'invalid_value' })
    expect(app.events).toEqual([expect.objectContaining({ result: 'unmetered', details: expect.objectContaining({ code: 'GH_RG_UNMETERED' }) })])
    const allowing = await startGuarded({ allowBackground: true })
    try {
      expect((await postJson(allowing.url, '/v1/responses', body)).status).toBe(200)
    } finally {
      await allowing.close()
    }
  })
})

describe('output bounds in a Gemini batch', () => {
  let gapp: GuardedApp
  beforeAll(async () => {
    gapp = await startGuarded({ providers: { gemini: { maxTokens: 3000 } } })
  })
  afterAll(() => gapp.close())

  it('walks the inline requests of a Gemini batch: caps written in or refused by path, candidateCount held, the bound summed', async () => {
    const BATCH_PATH = '/v1beta/models/gemini-2.0-flash:batchGenerateContent'
    const contents = [{ role: 'user', parts: [{ text: 'hi' }] }]
    const batch = (requests: unknown[], key = 'input_config') => ({ batch: { display_name: 'nightly', [key]: { requests: { requests } } } })
    const ok = await postJson(gapp.url, BATCH_PATH, batch([
      { request: { contents }, metadata: { key: 'a' } },
      { request: { contents, generationConfig: { maxOutputTokens: 100 } } },
      { request: { contents, generation_config: { temperature: 0 } } },
    ]))
    expect(ok.status).toBe(200)
    const f = forwarded(ok)
    // The two without a cap get the provider's (3000) in the spelling each used; the third keeps its 100.
    expect(f.inserted).toEqual(['batch.input_config.requests.requests[0].request.generationConfig.maxOutputTokens', 'batch.input_config.requests.requests[2].request.generation_config.max_output_tokens'])
    const sent = (f.body.batch as { input_config: { requests: { requests: { request: Record<string, Record<string, unknown>> }[] } } }).input_config.requests.requests
    expect(sent.map((e) => e.request.generationConfig?.maxOutputTokens ?? e.request.generation_config?.max_output_tokens)).toEqual([3000, 100, 3000])
    expect(f.estimate.outputTokens).toBe(3000 + 100 + 3000)
    // camelCase input config: walked the same way.
    const camel = await postJson(gapp.url, BATCH_PATH, batch([{ request: { contents, generationConfig: { maxOutputTokens: 7 } } }], 'inputConfig'))
    expect(camel.status).toBe(200)
    expect(forwarded(camel).estimate.outputTokens).toBe(7)

    const refusals: [Record<string, unknown>, string][] = [
      [batch([{ request: { contents } }, { request: { contents, generationConfig: { maxOutputTokens: 999_999 } } }]), 'batch.input_config.requests.requests[1].request.generationConfig.maxOutputTokens: must be <= 3000'],
      [batch([{ request: { contents, generationConfig: { maxOutputTokens: 10, candidateCount: 8 } } }]), 'batch.input_config.requests.requests[0].request.generationConfig.candidateCount: must be <= 1'],
      [{ batch: { input_config: { file_name: 'files/abc123' } } }, 'batch.input_config.file_name: a batch read from a file cannot be checked by this gateway'],
      [{ batch: { input_config: { file_name: 'files/abc123', requests: { requests: [{ request: { contents } }] } } } }, 'batch.input_config.file_name: a batch read from a file'],
      [{ batch: { inputConfig: { requests: { requests: [] } }, input_config: { requests: { requests: [{ request: { contents } }] } } } }, 'batch: set input_config or inputConfig, not both'],
      [{ batch: { display_name: 'x' } }, 'batch.input_config: is required'],
      [batch([{ request: { generationConfig: { maxOutputTokens: 5 } } }]), 'batch.input_config.requests.requests[0].request.contents: is required'],
    ]
    for (const [body, message] of refusals) {
      const res = await postJson(gapp.url, BATCH_PATH, body)
      expect(res.status).toBe(400)
      expect(res.json.locals).toBeUndefined()
      expect(res.json.error).toMatchObject({ code: 400, status: 'INVALID_ARGUMENT' })
      expect(res.json.error.message).toContain(message)
      expect(res.json.error.message).not.toContain('abc123')
    }
  })
})
