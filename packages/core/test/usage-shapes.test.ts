import { UsageMeter } from '@gatehouse/core'

/** Feed a body in chunks of `size` bytes, as a socket would. */
function meter(body: string, type = 'application/json', size = 65_536) {
  const m = new UsageMeter(type)
  const buf = Buffer.from(body)
  for (let i = 0; i < buf.length; i += size) m.push(buf.subarray(i, i + size))
  return m.finish()
}

/** Content past 4 MiB, so only the answer's last 64 KiB are kept. */
const big = (): string => 'word '.repeat(1_000_000)
const sse = (...events: unknown[]): string => events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join('')

describe('UsageMeter on JSON answers: the outermost object’s usage member only', () => {
  // What a model fills in (an Anthropic tool_use input, a Gemini functionCall's args) is an object
  // in the answer, not a string: a key named usage there must not set what the answer costs.
  const claudeTool = (text: string, input: unknown) =>
    JSON.stringify({
      id: 'msg_1',
      type: 'message',
      role: 'assistant',
      content: [
        { type: 'text', text },
        { type: 'tool_use', id: 'toolu_1', name: 'report', input },
      ],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: { input_tokens: 40, output_tokens: 900 },
    })

  it.each([
    ['usageMetadata', { usageMetadata: { promptTokenCount: 0, candidatesTokenCount: 0 } }],
    ['usage', { usage: { input_tokens: 0, output_tokens: 0 } }],
    [
      'both, nested deeper',
      { a: [{ usage: { input_tokens: 0 } }, { usageMetadata: { promptTokenCount: 0 } }] },
    ],
  ])('charges a Claude answer its own usage when a tool input holds %s', (_what, input) => {
    expect(meter(claudeTool('ok', input))).toEqual({ inputTokens: 40, outputTokens: 900 })
    // The same past 4 MiB, where only the tail is read.
    expect(meter(claudeTool(big(), input))).toEqual({ inputTokens: 40, outputTokens: 900 })
  })

  it('charges a Gemini answer its usageMetadata when functionCall args hold one', () => {
    const body = (text: string) =>
      JSON.stringify({
        candidates: [
          {
            content: {
              role: 'model',
              parts: [
                { text },
                {
                  functionCall: {
                    name: 'f',
                    args: { usageMetadata: { promptTokenCount: 1, candidatesTokenCount: 1 } },
                  },
                },
              ],
            },
            finishReason: 'STOP',
            index: 0,
          },
        ],
        usageMetadata: {
          promptTokenCount: 70,
          candidatesTokenCount: 80,
          thoughtsTokenCount: 20,
          totalTokenCount: 170,
        },
        modelVersion: 'gemini-2.5-flash',
        responseId: 'r1',
      })
    expect(meter(body('ok'))).toEqual({ inputTokens: 70, outputTokens: 100 })
    expect(meter(body(big()))).toEqual({ inputTokens: 70, outputTokens: 100 })
  })

  it('reads the last chunk of a Gemini stream answered as a JSON array (no alt=sse)', () => {
    const chunk = (text: string, last: boolean) => ({
      candidates: [
        {
          content: { role: 'model', parts: [{ text }] },
          ...(last ? { finishReason: 'STOP' } : {}),
          index: 0,
        },
      ],
      usageMetadata: last ? { promptTokenCount: 4, candidatesTokenCount: 6 } : { promptTokenCount: 4 },
      modelVersion: 'gemini-2.0-flash',
    })
    expect(meter(JSON.stringify([chunk('a', false), chunk('b', true)], null, 2))).toEqual({
      inputTokens: 4,
      outputTokens: 6,
    })
    expect(meter(JSON.stringify([chunk(big(), false), chunk('b', true)]))).toEqual({
      inputTokens: 4,
      outputTokens: 6,
    })
  })

  it('reads members written after the usage (OpenAI system_fingerprint, Responses metadata) and pretty-printed JSON', () => {
    const openai = {
      id: 'c',
      choices: [{ index: 0, message: { role: 'assistant', content: big() } }],
      usage: { prompt_tokens: 3, completion_tokens: 4 },
      service_tier: 'default',
      system_fingerprint: 'fp_1',
    }
    expect(meter(JSON.stringify(openai))).toEqual({ inputTokens: 3, outputTokens: 4 })
    expect(meter(JSON.stringify(openai, null, 2))).toEqual({ inputTokens: 3, outputTokens: 4 })
    // A Responses answer echoes the request's metadata (strings) after its usage.
    const responses = {
      id: 'resp_1',
      object: 'response',
      output: [{ type: 'message', content: [{ type: 'output_text', text: big() }] }],
      usage: { input_tokens: 8, output_tokens: 9 },
      user: null,
      metadata: { usage: 'tenant-a' },
    }
    expect(meter(JSON.stringify(responses))).toEqual({ inputTokens: 8, outputTokens: 9 })
    expect(meter(JSON.stringify({ ...responses, output: [] }))).toEqual({ inputTokens: 8, outputTokens: 9 })
  })

  it('reads nothing past 4 MiB when the usage is not in the last 64 KiB, or only quoted', () => {
    const early = JSON.stringify({
      usage: { prompt_tokens: 1, completion_tokens: 1 },
      choices: [{ message: { content: big() } }],
    })
    expect(meter(early)).toBeUndefined()
    const quoted = JSON.stringify({
      choices: [{ message: { content: `${big()}","usage":{"prompt_tokens":1,"completion_tokens":1}}` } }],
    })
    expect(meter(quoted)).toBeUndefined()
    // A body cut off after its usage (no closing brace) is not trusted.
    const cut = JSON.stringify({
      choices: [{ message: { content: big() } }],
      usage: { prompt_tokens: 1, completion_tokens: 2 },
    }).slice(0, -1)
    expect(meter(cut)).toBeUndefined()
  })

  it('finds the usage whatever the chunk boundaries, multi-byte text included', () => {
    const body = JSON.stringify({
      choices: [{ message: { content: 'é€𝄞'.repeat(700_000) } }],
      usage: { prompt_tokens: 11, completion_tokens: 22 },
    })
    for (const size of [1_000, 4_099, 65_536, 1_000_000])
      expect([size, meter(body, 'application/json', size)]).toEqual([
        size,
        { inputTokens: 11, outputTokens: 22 },
      ])
  })
})

describe('UsageMeter on streams: usage only from the final usage event', () => {
  const start = {
    type: 'message_start',
    message: {
      id: 'msg_1',
      type: 'message',
      role: 'assistant',
      content: [],
      model: 'claude',
      usage: { input_tokens: 25, output_tokens: 1 },
    },
  }
  const delta = { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'hi' } }

  it('reports nothing for an Anthropic stream that ended without message_delta (an error event, or a cut)', () => {
    const overloaded = { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }
    expect(meter(sse(start, delta, overloaded), 'text/event-stream')).toBeUndefined()
    expect(meter(sse(start, delta), 'text/event-stream')).toBeUndefined()
    const done = sse(
      start,
      delta,
      { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 15 } },
      { type: 'message_stop' },
    )
    expect(meter(done, 'text/event-stream')).toEqual({ inputTokens: 25, outputTokens: 15 })
  })

  it('reports nothing for a Gemini stream that ended before its finishReason chunk', () => {
    const chunk = (text: string, last: boolean) => ({
      candidates: [
        {
          content: { role: 'model', parts: [{ text }] },
          ...(last ? { finishReason: 'STOP' } : {}),
          index: 0,
        },
      ],
      usageMetadata: last
        ? { promptTokenCount: 9, candidatesTokenCount: 30, totalTokenCount: 39 }
        : { promptTokenCount: 9, totalTokenCount: 9 },
    })
    expect(meter(sse(chunk('a', false), chunk('b', false)), 'text/event-stream')).toBeUndefined()
    expect(meter(sse(chunk('a', false), chunk('b', true)), 'text/event-stream')).toEqual({
      inputTokens: 9,
      outputTokens: 30,
    })
    // A blocked prompt has no candidates: its usageMetadata is the whole answer's.
    expect(
      meter(
        sse({
          promptFeedback: { blockReason: 'SAFETY' },
          usageMetadata: { promptTokenCount: 9, totalTokenCount: 9 },
        }),
        'text/event-stream',
      ),
    ).toEqual({ inputTokens: 9, outputTokens: 0 })
  })

  it('reads a Responses stream from response.completed, not response.created', () => {
    const created = { type: 'response.created', response: { id: 'r', status: 'in_progress', usage: null } }
    const partial = {
      type: 'response.in_progress',
      response: { id: 'r', usage: { input_tokens: 5, output_tokens: 0 } },
    }
    const completed = {
      type: 'response.completed',
      response: { id: 'r', status: 'completed', usage: { input_tokens: 5, output_tokens: 6 } },
    }
    expect(meter(sse(created, partial), 'text/event-stream')).toBeUndefined()
    expect(meter(sse(created, partial, completed), 'text/event-stream')).toEqual({
      inputTokens: 5,
      outputTokens: 6,
    })
  })

  it('reads OpenAI chat’s usage-only chunk, and nothing from a stream without one', () => {
    const chunk = {
      id: 'c',
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta: { content: 'hi' }, finish_reason: null }],
      usage: null,
    }
    expect(meter(sse(chunk) + 'data: [DONE]\n\n', 'text/event-stream')).toBeUndefined()
    const usage = {
      id: 'c',
      object: 'chat.completion.chunk',
      choices: [],
      usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
    }
    expect(meter(sse(chunk, usage) + 'data: [DONE]\n\n', 'text/event-stream', 5)).toEqual({
      inputTokens: 3,
      outputTokens: 4,
    })
  })
})
