import { UsageMeter } from '@gatehouse/core'

describe('UsageMeter', () => {
  it('reads OpenAI JSON usage', () => {
    const m = new UsageMeter('application/json')
    const body = JSON.stringify({ usage: { prompt_tokens: 12, completion_tokens: 7 } })
    m.push(Buffer.from(body.slice(0, 10)))
    m.push(Buffer.from(body.slice(10)))
    expect(m.finish()).toEqual({ inputTokens: 12, outputTokens: 7 })
  })

  it('reads Anthropic SSE usage across chunk boundaries', () => {
    const m = new UsageMeter('text/event-stream; charset=utf-8')
    const stream =
      'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":25,"output_tokens":1}}}\n\n' +
      'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"hi"}}\n\n' +
      'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":15}}\n\n'
    for (let i = 0; i < stream.length; i += 7) m.push(stream.slice(i, i + 7))
    expect(m.finish()).toEqual({ inputTokens: 25, outputTokens: 15 })
  })

  it('reads the OpenAI final usage chunk and Gemini usageMetadata', () => {
    const o = new UsageMeter('text/event-stream')
    o.push('data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}\n\ndata: [DONE]\n\n')
    expect(o.finish()).toEqual({ inputTokens: 3, outputTokens: 4 })
    const g = new UsageMeter('text/event-stream')
    g.push('data: {"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":2}}\r\n\r\n')
    expect(g.finish()).toEqual({ inputTokens: 9, outputTokens: 2 })
  })

  it('reports nothing when the upstream sent no usage', () => {
    const m = new UsageMeter('application/json')
    m.push('{"ok":true}')
    expect(m.finish()).toBeUndefined()
  })

  it('reads the top-level usage of a JSON body, not a "usage" inside the content', () => {
    const meter = (body: string): unknown => {
      const m = new UsageMeter('application/json')
      m.push(Buffer.from(body))
      return m.finish()
    }
    // Text that mentions usage is a JSON string: its quotes are escaped.
    const openai = JSON.stringify({
      choices: [{ message: { content: 'say "usage": {"prompt_tokens": 99}' } }],
      usage: { prompt_tokens: 12, completion_tokens: 7 },
    })
    expect(meter(openai)).toEqual({ inputTokens: 12, outputTokens: 7 })
    // An Anthropic tool_use input is an object and may hold a usage key; the message's own comes last.
    const anthropic = JSON.stringify({
      content: [{ type: 'tool_use', input: { usage: { input_tokens: 1000, output_tokens: 1000 } } }],
      usage: { input_tokens: 5, cache_read_input_tokens: 2, output_tokens: 9, cache_creation: { ephemeral_5m_input_tokens: 0 } },
    })
    expect(meter(anthropic)).toEqual({ inputTokens: 7, outputTokens: 9 })
    expect(meter(JSON.stringify({ candidates: [], usageMetadata: { promptTokenCount: 9, candidatesTokenCount: 2 } }))).toEqual({
      inputTokens: 9,
      outputTokens: 2,
    })
    expect(meter('{ "usage" :\n {"prompt_tokens": 1, "completion_tokens": 2} }')).toEqual({ inputTokens: 1, outputTokens: 2 })
    expect(meter('{"usage": {"prompt_tokens": 1, ')).toBeUndefined()
    expect(meter('{"usage": "none"}')).toBeUndefined()
    expect(meter('not json')).toBeUndefined()
  })

  it('reads SSE usage from Buffers, whatever the chunk boundaries, with chunks that carry none skipped', () => {
    const stream =
      'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":25,"output_tokens":1}}}\n\n' +
      'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"hi"}}\n\n' +
      'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":15}}\n\n'
    const bytes = Buffer.from(stream)
    for (let size = 1; size <= bytes.length; size += 7) {
      const m = new UsageMeter('text/event-stream')
      for (let i = 0; i < bytes.length; i += size) m.push(bytes.subarray(i, i + size))
      expect(m.finish()).toEqual({ inputTokens: 25, outputTokens: 15 })
    }
  })
})
