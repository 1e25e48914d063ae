import { UsageMeter } from '@gatehouse/core'

/** Feed a body in 64 KiB chunks, as a socket would. */
function meter(body: string, type = 'application/json') {
  const m = new UsageMeter(type)
  const buf = Buffer.from(body)
  for (let i = 0; i < buf.length; i += 65_536) m.push(buf.subarray(i, i + 65_536))
  return m.finish()
}

const big = (n: number): string => 'word '.repeat(n)

describe('UsageMeter on answers past 4 MiB', () => {
  it('reads OpenAI usage from the end of a 5 MiB answer', () => {
    const body = JSON.stringify({ id: 'x', choices: [{ index: 0, message: { role: 'assistant', content: big(1_100_000) } }], usage: { prompt_tokens: 120_000, completion_tokens: 300_000, total_tokens: 420_000 } })
    expect(body.length).toBeGreaterThan(5 * 1024 * 1024)
    expect(meter(body)).toEqual({ inputTokens: 120_000, outputTokens: 300_000 })
  })

  it('reads Anthropic and Gemini usage the same way', () => {
    const claude = JSON.stringify({ type: 'message', content: [{ type: 'text', text: big(1_000_000) }], usage: { input_tokens: 10, cache_read_input_tokens: 5, output_tokens: 250_000 } })
    expect(meter(claude)).toEqual({ inputTokens: 15, outputTokens: 250_000 })
    const gemini = JSON.stringify({ candidates: [{ content: { parts: [{ text: big(1_000_000) }] } }], usageMetadata: { promptTokenCount: 7, candidatesTokenCount: 260_000 } })
    expect(meter(gemini)).toEqual({ inputTokens: 7, outputTokens: 260_000 })
  })

  it('is not fooled by a model output that quotes a usage object near the end', () => {
    const body = JSON.stringify({ choices: [{ message: { content: `${big(1_000_000)} "usage": {"prompt_tokens": 1, "completion_tokens": 1}` } }] })
    expect(meter(body)).toBeUndefined()
  })

  it('still reads small answers whole', () => {
    expect(meter(JSON.stringify({ usage: { prompt_tokens: 1, completion_tokens: 2 } }))).toEqual({ inputTokens: 1, outputTokens: 2 })
  })
})
