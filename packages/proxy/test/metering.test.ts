import { createUsageEventFilter, withStreamUsage } from '../src/metering'
import { createStreamMasker, prepareSecrets } from '../src/mask'

/** An OpenAI chat stream as the API writes it with include_usage (every chunk has "usage":null). */
function openaiStream(contents: string[], sep = '\n\n'): { full: string; withoutUsage: string } {
  const base = {
    id: 'chatcmpl-1',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'gpt-4o-mini',
    system_fingerprint: 'fp_1',
  }
  const ev = (o: object): string => `data: ${JSON.stringify(o)}${sep}`
  const head = ev({
    ...base,
    choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
    usage: null,
  })
  const body = contents
    .map((c) =>
      ev({
        ...base,
        choices: [{ index: 0, delta: { content: c }, logprobs: null, finish_reason: null }],
        usage: null,
      }),
    )
    .join('')
  const stop = ev({
    ...base,
    choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }],
    usage: null,
  })
  const usage = ev({
    ...base,
    choices: [],
    usage: { prompt_tokens: 9, completion_tokens: 12, total_tokens: 21 },
  })
  const done = `data: [DONE]${sep}`
  return { full: head + body + stop + usage + done, withoutUsage: head + body + stop + done }
}

function run(chunks: Buffer[], masker?: ReturnType<typeof createStreamMasker>): Buffer {
  const f = createUsageEventFilter()
  const out: Buffer[] = []
  for (const c of chunks) {
    const kept = f.push(c)
    out.push(masker ? masker.push(kept) : kept)
  }
  const tail = f.end()
  if (masker) out.push(masker.push(tail), masker.end())
  else out.push(tail)
  return Buffer.concat(out)
}

const split = (buf: Buffer, size: number): Buffer[] => {
  const out: Buffer[] = []
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size))
  return out
}

describe('createUsageEventFilter', () => {
  it('drops only the usage-only event, whatever the chunk boundaries, multi-byte characters intact', () => {
    const { full, withoutUsage } = openaiStream(['Grüße ', '€ 5, ', '𝄞 and 日本語 ', 'done'])
    const bytes = Buffer.from(full)
    const expected = Buffer.from(withoutUsage)
    for (let size = 1; size <= bytes.length; size++) {
      const got = run(split(bytes, size))
      if (!got.equals(expected)) throw new Error(`chunks of ${size} bytes: ${got.toString()}`)
    }
  })

  it('handles CRLF event separators and a last event without its blank line', () => {
    const { full, withoutUsage } = openaiStream(['a', 'b'], '\r\n\r\n')
    for (const size of [1, 3, 17, 4096])
      expect(run(split(Buffer.from(full), size)).toString()).toBe(withoutUsage)
    // A stream cut after the usage event's data line: the held event is still recognised.
    const cut = openaiStream(['a'])
      .full.replace(/data: \[DONE\]\n\n$/, '')
      .replace(/\n\n$/, '')
    expect(run([Buffer.from(cut)]).toString()).not.toContain('"choices":[]')
  })

  it('passes whole events without "choices":[] on untouched, as the same buffer', () => {
    const f = createUsageEventFilter()
    const { full } = openaiStream(['x'])
    const events = full.split(/(?<=\n\n)/).map((e) => Buffer.from(e))
    expect(f.push(events[0]!)).toBe(events[0])
    expect(f.push(events[1]!)).toBe(events[1])
  })

  it('keeps events that only look like a usage event: content quoting it, choices with usage (Gemini), other fields', () => {
    const quoted = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: '"choices":[],"usage":{}' } }], usage: null })}\n\n`
    const both = `data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 2 } })}\n\n`
    const named = `event: custom\ndata: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 1 } })}\n\n`
    const nullUsage = `data: ${JSON.stringify({ choices: [], usage: null })}\n\n`
    const stream = quoted + both + named + nullUsage
    for (const size of [1, 7, 1000]) expect(run(split(Buffer.from(stream), size)).toString()).toBe(stream)
  })

  it('passes an event that grows past its bound on, rather than holding it', () => {
    const huge = `data: ${JSON.stringify({ choices: [{ delta: { content: 'x'.repeat(600_000) } }] })}`
    const { full, withoutUsage } = openaiStream(['y'])
    const chunks = [...split(Buffer.from(huge), 65_536), Buffer.from('\n\n' + full)]
    const f = createUsageEventFilter()
    const out: Buffer[] = []
    let held = 0
    let pushed = 0
    let passed = 0
    for (const c of chunks) {
      const o = f.push(c)
      out.push(o)
      pushed += c.length
      passed += o.length
      held = Math.max(held, pushed - passed)
    }
    out.push(f.end())
    expect(Buffer.concat(out).toString()).toBe(`${huge}\n\n${withoutUsage}`)
    expect(held).toBeLessThan(400 * 1024)
  })

  it('runs before the stream masker without breaking a secret split across chunks', () => {
    const secret = 'sk-proj-' + 'Q'.repeat(40)
    const injected = prepareSecrets([secret])
    const { full, withoutUsage } = openaiStream([
      `key ${secret.slice(0, 12)}`,
      `${secret.slice(12)} end`,
      secret,
    ])
    // The secret is in the stream whole once the two content parts join in the client's text; in
    // the bytes it is only whole in the third chunk, and the masker sees every byte around it.
    const expected = withoutUsage.split(secret).join(`${secret.slice(0, 4)}****`)
    for (const size of [1, 5, 13, 64, 100_000]) {
      const masker = createStreamMasker(injected)!
      const got = run(split(Buffer.from(full), size), masker).toString()
      expect(got).not.toContain(secret)
      expect(got.replace(/sk-p[^"]*\*\*\*\*/g, 'MASKED')).toBe(
        expected.replace(/sk-p[^"]*\*\*\*\*/g, 'MASKED'),
      )
    }
  })
})

describe('withStreamUsage', () => {
  const chat = (o: object): Buffer => Buffer.from(JSON.stringify(o))

  it('adds the member before the closing brace, leaving every other byte as it was', () => {
    const body = Buffer.from(
      '{ "model" : "gpt-4o",\n "stream":true, "max_tokens": 1e3, "messages":[{"role":"user","content":"é}"}] }\n',
    )
    const out = withStreamUsage('openai.chat', undefined, body)!
    expect(out.toString()).toBe(
      '{ "model" : "gpt-4o",\n "stream":true, "max_tokens": 1e3, "messages":[{"role":"user","content":"é}"}] ,"stream_options":{"include_usage":true}}\n',
    )
    expect(JSON.parse(out.toString())).toMatchObject({
      max_tokens: 1000,
      stream_options: { include_usage: true },
    })
    // Request-guard's parsed body spares the parse; the bytes are still the body's.
    expect(withStreamUsage('openai.completions', JSON.parse(body.toString()), body)!.equals(out)).toBe(true)
    expect(withStreamUsage('gemini.openai.chat', undefined, body)!.equals(out)).toBe(true)
  })

  it.each<[string, string, object]>([
    ['a non-stream request', 'openai.chat', { model: 'm', messages: [] }],
    ['stream: "true" (not a boolean)', 'openai.chat', { model: 'm', stream: 'true' }],
    [
      'a stream that asked for usage',
      'openai.chat',
      { model: 'm', stream: true, stream_options: { include_usage: true } },
    ],
    ['an endpoint that always reports usage', 'openai.responses', { model: 'm', stream: true }],
    ['Anthropic', 'claude.messages', { model: 'm', stream: true }],
  ])('leaves %s alone', (_what, endpoint, body) => {
    expect(withStreamUsage(endpoint, undefined, chat(body))).toBeUndefined()
    expect(withStreamUsage(endpoint, body, chat(body))).toBeUndefined()
  })

  it('sets include_usage in stream_options the client sent without it, keeping its other options', () => {
    for (const so of [{ include_usage: false }, { include_obfuscation: false }, null]) {
      const out = withStreamUsage(
        'openai.chat',
        undefined,
        chat({ model: 'm', stream: true, stream_options: so }),
      )!
      expect(JSON.parse(out.toString())).toEqual({
        model: 'm',
        stream: true,
        stream_options: { ...so, include_usage: true },
      })
    }
  })

  it('leaves a body that is not a JSON object alone', () => {
    expect(withStreamUsage('openai.chat', undefined, Buffer.from('{"stream":true'))).toBeUndefined()
    expect(withStreamUsage('openai.chat', undefined, Buffer.from('[{"stream":true}]'))).toBeUndefined()
  })
})
