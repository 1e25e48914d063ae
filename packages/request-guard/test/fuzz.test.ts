import {
  GEMINI_PATH,
  chat,
  claude,
  gemini,
  send,
  startGuarded,
  type GuardedApp,
  type RawResponse,
} from './helpers'

/**
 * Malformed and hostile bodies, sent for real over loopback. The only acceptable answers are a
 * refusal in the provider's own shape (400, 413, 415) or, for inputs that are in fact valid, 200.
 * Never a 500, never a hang.
 */

const PATHS = { openai: '/v1/chat/completions', claude: '/v1/messages', gemini: GEMINI_PATH } as const
type Dialect = keyof typeof PATHS

function expectNativeShape(dialect: Dialect, res: RawResponse): void {
  if (res.status === 200) return
  switch (dialect) {
    case 'openai':
      expect(Object.keys(res.json.error).sort()).toEqual(['code', 'message', 'param', 'type'])
      expect(res.json.error).toMatchObject({ message: expect.any(String), type: 'invalid_request_error' })
      expect(res.json.error.param === null || typeof res.json.error.param === 'string').toBe(true)
      expect(res.json.error.code === null || typeof res.json.error.code === 'string').toBe(true)
      expect(Object.keys(res.json)).toEqual(['error'])
      break
    case 'claude':
      expect(res.json).toEqual({
        type: 'error',
        error: { type: expect.any(String), message: expect.any(String) },
      })
      break
    case 'gemini':
      expect(res.json).toEqual({
        error: { code: res.status, message: expect.any(String), status: 'INVALID_ARGUMENT' },
      })
      break
  }
}

/** A small deterministic PRNG (mulberry32), so a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8')
const DEEP = 100_000

/** [name, body, expected statuses]. */
const TABLE: [string, Buffer, number[]][] = [
  ['empty body', Buffer.alloc(0), [400]],
  ['whitespace only', utf8(' \n\t '), [400]],
  ['a lone brace', utf8('{'), [400]],
  ['a lone closing bracket', utf8(']'), [400]],
  ['unbalanced closers', utf8('{"a":1}}'), [400]],
  ['mismatched closers', utf8('{"a":[1}'), [400]],
  ['truncated mid-key', utf8('{"mod'), [400]],
  ['truncated mid-string', utf8('{"model":"gpt'), [400]],
  ['truncated after colon', utf8('{"model":'), [400]],
  ['truncated escape', utf8('{"model":"\\'), [400]],
  ['bad escape', utf8('{"model":"\\x41"}'), [400]],
  ['bad unicode escape in a key', utf8('{"\\uZZZZ":1}'), [400]],
  ['UTF-8 BOM', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), utf8('{}')]), [400]],
  ['UTF-16 BOM', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('{}', 'utf16le')]), [400]],
  ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), [400]],
  ['overlong UTF-8 encoding of "/"', Buffer.from([0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x3a, 0x31, 0x7d]), [400]],
  [
    'encoded surrogate half (CESU-8)',
    Buffer.concat([utf8('{"a":"'), Buffer.from([0xed, 0xa0, 0x80]), utf8('"}')]),
    [400],
  ],
  ['raw NUL in a string', utf8('{"model":"a\u0000b"}'), [400]],
  ['raw newline in a string', utf8('{"model":"a\nb"}'), [400]],
  ['null', utf8('null'), [400]],
  ['true', utf8('true'), [400]],
  ['a number', utf8('-0.5e10'), [400]],
  ['a string', utf8('"{}"'), [400]],
  ['an empty array', utf8('[]'), [400]],
  ['an array of bodies', utf8(`[${JSON.stringify(chat())}]`), [400]],
  ['two documents', utf8('{}{}'), [400]],
  ['NaN', utf8('{"temperature":NaN}'), [400]],
  ['Infinity', utf8('{"max_tokens":Infinity}'), [400]],
  ['a number that overflows to Infinity', utf8('{"max_tokens":1e999}'), [400]],
  ['a 400-digit max_tokens', utf8(`{"max_tokens":${'9'.repeat(400)}}`), [400]],
  ['negative max_tokens', utf8('{"max_tokens":-5}'), [400]],
  ['hex number', utf8('{"max_tokens":0x10}'), [400]],
  ['single quotes', utf8("{'model':'x'}"), [400]],
  ['a comment', utf8('{"model":"x" /* hi */}'), [400]],
  ['a trailing comma', utf8('{"model":"x",}'), [400]],
  ['an unquoted key', utf8('{model:"x"}'), [400]],
  ['a missing colon', utf8('{"model" "x"}'), [400]],
  ['a missing comma', utf8('{"model":"x" "n":1}'), [400]],
  ['a key without a value', utf8('{"model"}'), [400]],
  ['__proto__', utf8('{"__proto__":{"isAdmin":true}}'), [400]],
  ['escaped __proto__', utf8('{"\\u005F\\u005Fproto\\u005F\\u005F":{}}'), [400]],
  ['deep __proto__', utf8(`{"a":${'{"b":'.repeat(20)}{"__proto__":1}${'}'.repeat(20)}}`), [400]],
  ['constructor.prototype', utf8('{"constructor":{"prototype":{"x":1}}}'), [400]],
  ['duplicate keys', utf8('{"max_tokens":1,"max_tokens":999999}'), [400]],
  [`${DEEP}-deep arrays`, utf8('['.repeat(DEEP) + ']'.repeat(DEEP)), [400]],
  [`${DEEP}-deep objects`, utf8('{"a":'.repeat(DEEP) + '1' + '}'.repeat(DEEP)), [400]],
  [`${DEEP}-deep, never closed`, utf8('['.repeat(DEEP)), [400]],
  [`${DEEP} closers`, utf8(']'.repeat(DEEP)), [400]],
  ['1M-element array at the top', utf8(`[${Array(1_000_000).fill('0').join(',')}]`), [413]],
  [
    '1M-element array in a field',
    utf8(`{"model":"x","messages":[${Array(1_000_000).fill('0').join(',')}]}`),
    [413],
  ],
  ['1M empty strings', utf8(`{"stop":[${Array(1_000_000).fill('""').join(',')}]}`), [413]],
  [
    '200k keys in one object',
    utf8(`{${Array.from({ length: 200_000 }, (_, i) => `"k${i}":0`).join(',')}}`),
    [413],
  ],
  [
    'brackets inside strings',
    utf8(
      JSON.stringify(chat({ messages: [{ role: 'user', content: '['.repeat(DEEP) + '{"__proto__":1}' }] })),
    ),
    [200, 400],
  ],
  [
    'lone surrogate escapes',
    utf8(JSON.stringify(chat()).replace('Say hello', '\\ud800\\udc00\\udfff')),
    [200, 400],
  ],
  [
    'a million backslashes',
    utf8(`{"model":"x","messages":[{"role":"user","content":"${'\\\\'.repeat(500_000)}"}]}`),
    [200, 400],
  ],
  [
    'a 1 MB key',
    utf8(`{"${'k'.repeat(1024 * 1024)}":1,"model":"x","messages":[{"role":"user","content":"x"}]}`),
    [200, 400],
  ],
]

/** Wrong types for every field the schemas know, per dialect. */
const WRONG_TYPES: [Dialect, Record<string, unknown>][] = [
  ['openai', { ...chat(), model: 5 }],
  ['openai', { ...chat(), model: null }],
  ['openai', { ...chat(), messages: {} }],
  ['openai', { ...chat(), messages: [null] }],
  ['openai', { ...chat(), messages: ['hi'] }],
  ['openai', { ...chat(), messages: [{ role: 'user', content: [null] }] }],
  ['openai', { ...chat(), messages: [{ role: 'user', content: [{ type: 5 }] }] }],
  ['openai', { ...chat(), max_tokens: '100' }],
  ['openai', { ...chat(), max_tokens: [100] }],
  ['openai', { ...chat(), max_tokens: { value: 100 } }],
  ['openai', { ...chat(), temperature: '0.5' }],
  ['openai', { ...chat(), n: 0 }],
  ['openai', { ...chat(), tools: {} }],
  ['openai', { ...chat(), stream_options: 'yes' }],
  ['claude', { ...claude(), max_tokens: null }],
  ['claude', { ...claude(), max_tokens: '1024' }],
  ['claude', { ...claude(), max_tokens: 0 }],
  ['claude', { ...claude(), messages: [{ role: 'user' }] }],
  ['claude', { ...claude(), messages: [{ role: 'user', content: [{ text: 'no type' }] }] }],
  ['claude', { ...claude(), system: { text: 'x' } }],
  ['claude', { ...claude(), stop_sequences: 'END' }],
  ['claude', { ...claude(), tool_choice: 'auto' }],
  ['claude', { ...claude(), top_k: 1.5 }],
  ['gemini', { contents: 'hi' }],
  ['gemini', { contents: [{ parts: 'hi' }] }],
  ['gemini', { ...gemini(), generationConfig: [] }],
  ['gemini', { ...gemini(), generationConfig: { maxOutputTokens: -1 } }],
  ['gemini', { ...gemini(), generationConfig: { maxOutputTokens: 1.5 } }],
  ['gemini', { ...gemini(), generationConfig: { stopSequences: [1] } }],
]

const post = (app: GuardedApp, dialect: Dialect, body: Buffer): Promise<RawResponse> =>
  send(app.url, {
    path: PATHS[dialect],
    headers: { 'content-type': 'application/json', 'content-length': body.length },
    body,
  })

describe('requestGuard under malformed input', () => {
  let app: GuardedApp
  beforeAll(async () => {
    app = await startGuarded()
  })
  afterAll(() => app.close())

  it.each(TABLE)('%s: a native refusal on every provider path, never 500', async (_name, body, statuses) => {
    for (const dialect of Object.keys(PATHS) as Dialect[]) {
      const started = Date.now()
      const res = await post(app, dialect, body)
      expect(statuses).toContain(res.status)
      expectNativeShape(dialect, res)
      expect(Date.now() - started).toBeLessThan(5_000)
    }
  })

  it.each(WRONG_TYPES)('%s body with a wrong type %j: 400 naming a field', async (dialect, body) => {
    const res = await post(app, dialect, utf8(JSON.stringify(body)))
    expect(res.status).toBe(400)
    expectNativeShape(dialect, res)
    expect(res.json.error.message).toMatch(/^[A-Za-z_?][\w.?[\]]*: /)
  })

  it('refuses every truncation of a valid body', async () => {
    const bodies: [Dialect, string][] = [
      [
        'openai',
        JSON.stringify(chat({ max_tokens: 10, tools: [{ type: 'function', function: { name: 'f' } }] })),
      ],
      ['claude', JSON.stringify(claude({ system: 'sys' }))],
      ['gemini', JSON.stringify(gemini({ generationConfig: { maxOutputTokens: 10 } }))],
    ]
    for (const [dialect, text] of bodies) {
      const step = Math.max(1, Math.floor(text.length / 25))
      for (let cut = 0; cut < text.length; cut += step) {
        const res = await post(app, dialect, utf8(text.slice(0, cut)))
        expect(res.status).toBe(400)
        expectNativeShape(dialect, res)
      }
      expect((await post(app, dialect, utf8(text))).status).toBe(200)
    }
  })

  it('answers 200 or a native 4xx to 300 seeded byte mutations of valid bodies', async () => {
    const rand = prng(0x5eed)
    const seeds: [Dialect, Buffer][] = [
      [
        'openai',
        utf8(
          JSON.stringify(
            chat({
              max_tokens: 100,
              messages: [{ role: 'user', content: [{ type: 'text', text: 'héllo' }] }],
            }),
          ),
        ),
      ],
      [
        'claude',
        utf8(
          JSON.stringify(claude({ messages: [{ role: 'user', content: [{ type: 'text', text: '世界' }] }] })),
        ),
      ],
      ['gemini', utf8(JSON.stringify(gemini({ generationConfig: { maxOutputTokens: 100 } })))],
    ]
    const interesting = [
      0x00, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x80, 0xc3, 0xff, 0x30, 0x39, 0x2d, 0x65,
    ]
    const seen = new Map<number, number>()
    for (let i = 0; i < 300; i++) {
      const [dialect, seed] = seeds[i % seeds.length]!
      const body = Buffer.from(seed)
      const edits = 1 + Math.floor(rand() * 3)
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(rand() * body.length)
        body[at] =
          rand() < 0.5 ? interesting[Math.floor(rand() * interesting.length)]! : Math.floor(rand() * 256)
      }
      const res = await post(app, dialect, body)
      seen.set(res.status, (seen.get(res.status) ?? 0) + 1)
      expect([200, 400, 413]).toContain(res.status)
      expectNativeShape(dialect, res)
    }
    expect(seen.get(400)).toBeGreaterThan(100)
  })

  it('answers a chunked body over the limit with 413, not 500, on every path', async () => {
    const small = await startGuarded({ bodyLimit: 4096 })
    try {
      for (const dialect of Object.keys(PATHS) as Dialect[]) {
        const res = await send(small.url, {
          path: PATHS[dialect],
          headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
          chunks: Array.from({ length: 50 }, () => Buffer.alloc(1024, 0x20)),
          chunkDelayMs: 1,
        })
        expect(res.status).toBe(413)
        expectNativeShape(dialect, res)
      }
    } finally {
      await small.close()
    }
  })
})
