import http from 'node:http'
import { waitFor } from '@gatehouse/testing'
import { anthropicBody, openaiBody, postChat, startHarness, type Harness } from './helpers'

/** Read an SSE response, noting when each chunk arrived. */
async function readChunks(res: Response): Promise<{ text: string; arrivals: { at: number; text: string }[] }> {
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  const arrivals: { at: number; text: string }[] = []
  let text = ''
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    const t = decoder.decode(value, { stream: true })
    arrivals.push({ at: Date.now(), text: t })
    text += t
  }
  return { text, arrivals }
}

describe('streaming', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness((c) => {
      c.server.timeouts.idle = '400ms'
      c.server.timeouts.first_byte = '600ms'
    })
  })
  afterAll(() => h.close())
  beforeEach(() => h.upstream.reset())

  it('relays SSE chunks as they arrive: 100 ms apart upstream, 100 ms apart at the client', async () => {
    h.upstream.behave({ chunks: 5, chunkIntervalMs: 100 })
    const res = await fetch(`${h.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': h.key },
      body: JSON.stringify(anthropicBody({ stream: true })),
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toContain('text/event-stream')
    const { text, arrivals } = await readChunks(res)
    const deltas = arrivals.filter((a) => a.text.includes('content_block_delta'))
    expect(deltas.length).toBeGreaterThanOrEqual(4)
    // Each chunk arrives on its own, about 100 ms after the one before: the median gap is robust to
    // one chunk delayed by a busy machine, and a buffering proxy would show gaps near 0.
    const gaps = deltas.slice(1).map((d, i) => d.at - deltas[i]!.at).sort((a, b) => a - b)
    const median = gaps[Math.floor(gaps.length / 2)]!
    expect(median).toBeGreaterThanOrEqual(70)
    expect(median).toBeLessThan(170)
    expect(deltas[deltas.length - 1]!.at - deltas[0]!.at).toBeGreaterThanOrEqual(300)
    expect(text).toContain('event: message_stop')
  })

  it('relays an OpenAI stream with its final usage chunk and [DONE]', async () => {
    h.upstream.behave({ chunks: 3 })
    const res = await fetch(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${h.key}` },
      body: JSON.stringify(openaiBody({ stream: true, stream_options: { include_usage: true } })),
    })
    const { text } = await readChunks(res)
    expect(text).toContain('"usage":{"prompt_tokens"')
    expect(text.trim().endsWith('data: [DONE]')).toBe(true)
  })

  it('cuts a stream that goes idle', async () => {
    h.upstream.behave({ chunks: 5, stallAfterChunks: 1 })
    const started = Date.now()
    const res = await fetch(`${h.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': h.key },
      body: JSON.stringify(anthropicBody({ stream: true })),
    })
    expect(res.status).toBe(200)
    await expect(readChunks(res)).rejects.toThrow()
    const elapsed = Date.now() - started
    expect(elapsed).toBeGreaterThanOrEqual(350)
    expect(elapsed).toBeLessThan(3000)
  })

  it('answers 504 in the provider shape when the upstream sends nothing before first_byte', async () => {
    h.upstream.behave({ stall: true })
    const res = await postChat(h)
    expect(res.status).toBe(504)
    const body = (await res.json()) as { error: { message: string; type: string } }
    expect(body.error.type).toBe('server_error')
    expect(body.error.message).toBe('The openai upstream did not answer in time')
    expect(JSON.stringify(body)).not.toContain('127.0.0.1')
  })

  it('answers 502 when the upstream hangs up, leaking nothing of it', async () => {
    h.upstream.behave({ hangUp: true })
    const res = await fetch(`${h.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': h.key },
      body: JSON.stringify(anthropicBody()),
    })
    expect(res.status).toBe(502)
    const text = await res.text()
    expect(JSON.parse(text)).toEqual({ type: 'error', error: { type: 'api_error', message: 'The claude upstream could not be reached' } })
    expect(text).not.toMatch(/ECONNRESET|socket|127\.0\.0\.1/)
  })

  it('ends the client stream when the upstream drops mid-stream', async () => {
    h.upstream.behave({ chunks: 5, dropAfterChunks: 2 })
    const res = await fetch(`${h.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': h.key },
      body: JSON.stringify(anthropicBody({ stream: true })),
    })
    await expect(readChunks(res)).rejects.toThrow()
  })

  it('closes the upstream request when the client disconnects', async () => {
    h.upstream.behave({ chunks: 50, chunkIntervalMs: 50 })
    await new Promise<void>((resolve, reject) => {
      const req = http.request(
        `${h.url}/v1/messages`,
        { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': h.key } },
        (res) => {
          res.once('data', () => {
            req.destroy()
            resolve()
          })
        },
      )
      req.on('error', () => undefined)
      req.end(JSON.stringify(anthropicBody({ stream: true })))
      setTimeout(() => reject(new Error('no data')), 3000).unref()
    })
    await waitFor(() => h.upstream.aborted > 0, 2000, { every: 20, what: 'the upstream request to be aborted' })
    expect(h.upstream.aborted).toBe(1)
  })
})

describe('upstream unreachable', () => {
  it('answers 502 when nothing listens at base_url', async () => {
    const h = await startHarness((c) => {
      c.providers.openai!.base_url = 'http://127.0.0.1:1'
    })
    try {
      const res = await postChat(h)
      expect(res.status).toBe(502)
      const text = await res.text()
      expect(text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1:1/)
    } finally {
      await h.close()
    }
  })
})

describe('backpressure', () => {
  it('reads the upstream no faster than the client reads the gateway, and loses no byte', async () => {
    // An upstream that streams 48 MiB as fast as it may write, counting what it got to write.
    const total = 48 * 1024 * 1024
    const piece = Buffer.alloc(64 * 1024, 'a')
    let written = 0
    const upstream = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total })
      const pump = (): void => {
        while (written < total) {
          written += piece.length
          if (!res.write(piece)) return void res.once('drain', pump)
        }
        res.end()
      }
      pump()
    })
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
    const base = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`
    const h = await startHarness((c) => {
      c.providers.openai!.base_url = base
      c.server.timeouts.idle = '10s'
    })
    try {
      let received = 0
      let writtenWhilePaused = 0
      await new Promise<void>((resolve, reject) => {
        const url = new URL('/v1/models', h.url)
        const req = http.get({ host: url.hostname, port: url.port, path: url.pathname, headers: { 'x-api-key': h.key } }, (res) => {
          expect(res.statusCode).toBe(200)
          res.once('data', (chunk: Buffer) => {
            received += chunk.length
            // Stop reading for a while: the gateway must stop reading its upstream too.
            res.pause()
            setTimeout(() => {
              writtenWhilePaused = written
              res.on('data', (c: Buffer) => (received += c.length))
              res.resume()
            }, 800)
          })
          res.on('end', resolve)
          res.on('error', reject)
        })
        req.on('error', reject)
      })
      expect(received).toBe(total)
      // Socket and stream buffers hold a few MiB at most; without backpressure all 48 would be read.
      expect(writtenWhilePaused).toBeLessThan(24 * 1024 * 1024)
    } finally {
      await h.close()
      await new Promise((resolve) => upstream.close(resolve))
    }
  }, 30_000)
})
