import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { jsonAnswer } from './mock-answers'
import { MockObjects } from './mock-objects'

/** One request the mock upstream received, exactly as it arrived. */
export interface RecordedRequest {
  method: string
  /** Path and query as received. */
  url: string
  path: string
  headers: http.IncomingHttpHeaders
  /** Raw header pairs in arrival order (duplicates kept). */
  rawHeaders: string[]
  body: Buffer
  /** The body parsed as JSON, when it was JSON. */
  json: unknown
  receivedAt: number
}

/** How the mock answers the requests that follow (persists until changed or `reset()`). */
export interface UpstreamBehaviour {
  /** Wait this long before sending headers. */
  delayMs?: number
  /** Accept the request and never answer (a stalled upstream). */
  stall?: boolean
  /** Answer with this status and the provider's own error shape. */
  failStatus?: number
  /** Error message for failStatus; `{key}` is replaced by the credential the upstream received. */
  failMessage?: string
  /** Answer 302 to this location. */
  redirectTo?: string
  /** Extra response headers (e.g. Set-Cookie, to test that the gateway strips them). */
  headers?: Record<string, string | string[]>
  /** Number of content chunks in a stream. @default 3 */
  chunks?: number
  /** Milliseconds between stream chunks. @default 0 */
  chunkIntervalMs?: number
  /** Send this many chunks, then stop sending without closing (an idle stream). */
  stallAfterChunks?: number
  /** Send this many chunks, then destroy the connection (a dropped stream). */
  dropAfterChunks?: number
  /** Usage to report; by default input = ceil(body bytes / 4), output = 5 per chunk. */
  usage?: { input: number; output: number }
  /** Close the socket without any response. */
  hangUp?: boolean
}

type Provider = 'openai' | 'claude' | 'gemini'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

function providerFor(path: string): Provider {
  if (path.startsWith('/v1/messages')) return 'claude'
  if (path.startsWith('/v1beta/')) return 'gemini'
  return 'openai'
}

function errorBody(provider: Provider, status: number, message: string): unknown {
  if (provider === 'claude') {
    const type = status === 401 ? 'authentication_error' : status === 429 ? 'rate_limit_error' : status >= 500 ? 'api_error' : 'invalid_request_error'
    return { type: 'error', error: { type, message } }
  }
  if (provider === 'gemini') {
    const s = status === 401 ? 'UNAUTHENTICATED' : status === 429 ? 'RESOURCE_EXHAUSTED' : status >= 500 ? 'INTERNAL' : 'INVALID_ARGUMENT'
    return { error: { code: status, message, status: s } }
  }
  const type = status === 429 ? 'requests' : status >= 500 ? 'server_error' : 'invalid_request_error'
  return { error: { message, type, param: null, code: status === 401 ? 'invalid_api_key' : null } }
}

/**
 * A local stand-in for the LLM providers that speaks their JSON and SSE faithfully:
 * OpenAI chat/completions (JSON, and SSE with a final usage chunk when
 * `stream_options.include_usage` is set), Anthropic messages (JSON, and the full SSE event
 * sequence with usage in `message_start` and `message_delta`), Gemini generateContent and
 * streamGenerateContent (`alt=sse`), and the JSON answers of mock-answers.ts (model lists, embeddings, moderations, Responses,
 * count_tokens, tool calls). It records every request
 * and can delay, stall, drop mid-stream, fail or redirect on demand.
 */
export class MockUpstream {
  readonly requests: RecordedRequest[] = []
  private behaviour: UpstreamBehaviour = {}
  private readonly sockets = new Set<Socket>()
  /** Requests whose client went away before the response ended. */
  aborted = 0
  /** The files and batches this provider keeps (they outlive reset(), as a provider's do). */
  readonly objects = new MockObjects()

  private constructor(
    readonly server: http.Server,
    readonly port: number,
  ) {}

  /** Keep every request in `requests` (turn off for load runs). */
  private record = true

  /** Start on 127.0.0.1 and an ephemeral port. */
  static async start(behaviour: UpstreamBehaviour = {}, options: { record?: boolean; port?: number } = {}): Promise<MockUpstream> {
    const holder: { mock?: MockUpstream } = {}
    const server = http.createServer((req, res) => void holder.mock!.handle(req, res))
    server.keepAliveTimeout = 30_000
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(options.port ?? 0, '127.0.0.1', () => resolve())
    })
    const mock = new MockUpstream(server, (server.address() as AddressInfo).port)
    holder.mock = mock
    mock.behaviour = behaviour
    mock.record = options.record ?? true
    server.on('connection', (s) => {
      mock.sockets.add(s)
      s.on('close', () => mock.sockets.delete(s))
    })
    return mock
  }

  /** `http://127.0.0.1:<port>` */
  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  /** Number of open TCP connections from clients (the gateway's keep-alive pool). */
  get openConnections(): number {
    return this.sockets.size
  }

  /** Replace the behaviour for the requests that follow. */
  behave(behaviour: UpstreamBehaviour): this {
    this.behaviour = behaviour
    return this
  }

  /** Forget recorded requests and behaviour. */
  reset(): this {
    this.requests.length = 0
    this.behaviour = {}
    this.aborted = 0
    return this
  }

  /** The last request received. */
  get last(): RecordedRequest | undefined {
    return this.requests[this.requests.length - 1]
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const body = Buffer.concat(chunks)
    let json: unknown
    try {
      json = body.length ? JSON.parse(body.toString('utf8')) : undefined
    } catch {
      json = undefined
    }
    const url = req.url ?? '/'
    const path = url.split('?')[0] ?? '/'
    if (this.record) this.requests.push({
      method: req.method ?? 'GET',
      url,
      path,
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      body,
      json,
      receivedAt: Date.now(),
    })
    const b = this.behaviour
    let finished = false
    res.on('finish', () => (finished = true))
    res.on('close', () => {
      if (!finished) this.aborted++
    })
    if (b.hangUp) {
      req.socket.destroy()
      return
    }
    if (b.stall) return
    if (b.delayMs) await sleep(b.delayMs)
    for (const [k, v] of Object.entries(b.headers ?? {})) res.setHeader(k, v)
    res.setHeader('x-request-id', `upstream-${randomBytes(4).toString('hex')}`)
    const provider = providerFor(path)
    if (b.redirectTo) {
      res.writeHead(302, { location: b.redirectTo, 'content-type': 'text/plain' }).end('redirect')
      return
    }
    if (b.failStatus) {
      const key = String(req.headers['x-api-key'] ?? req.headers.authorization ?? req.headers['x-goog-api-key'] ?? '')
      const message = (b.failMessage ?? 'upstream failure').replace('{key}', key)
      res.writeHead(b.failStatus, { 'content-type': 'application/json' })
      res.end(JSON.stringify(errorBody(provider, b.failStatus, message)))
      return
    }
    const input = b.usage?.input ?? Math.max(1, Math.ceil(body.length / 4))
    const n = b.chunks ?? 3
    const output = b.usage?.output ?? n * 5
    const request = (json ?? {}) as Record<string, unknown>
    const model = typeof request.model === 'string' ? request.model : 'mock-model'

    // The objects the provider keeps (files, batches), then every other JSON answer from mock-answers.
    const stored = this.objects.answer(req.method ?? 'GET', path, req.headers, body, request)
    if (stored !== undefined) {
      const bytes = 'json' in stored ? Buffer.from(JSON.stringify(stored.json)) : stored.bytes
      res.writeHead(stored.status, { 'content-type': 'json' in stored ? 'application/json' : stored.contentType, 'content-length': bytes.length })
      res.end(bytes)
      return
    }
    // Streams are written below; every other JSON answer comes from mock-answers.
    const answer =
      request.stream === true ? undefined : jsonAnswer({ method: req.method ?? 'GET', path, headers: req.headers, request, model, text: this.text(n), input, output })
    if (answer !== undefined) {
      this.json(res, answer)
      return
    }
    if (path.startsWith('/v1/messages')) {
      if (request.stream === true) await this.anthropicStream(res, model, n, input, output, b)
      else
        this.json(res, {
          id: `msg_${randomBytes(8).toString('hex')}`,
          type: 'message',
          role: 'assistant',
          model,
          content: [{ type: 'text', text: this.text(n) }],
          stop_reason: 'end_turn',
          stop_sequence: null,
          usage: { input_tokens: input, output_tokens: output },
        })
      return
    }
    if (path === '/v1/chat/completions' || path === '/v1/completions') {
      const opts = (request.stream_options ?? {}) as Record<string, unknown>
      await this.openaiStream(res, model, n, input, output, opts.include_usage === true, b)
      return
    }
    if (path.startsWith('/v1beta/models/')) {
      if (path.endsWith(':streamGenerateContent')) await this.geminiStream(res, n, input, output, b)
      else
        this.json(res, {
          candidates: [{ content: { role: 'model', parts: [{ text: this.text(n) }] }, finishReason: 'STOP', index: 0 }],
          usageMetadata: { promptTokenCount: input, candidatesTokenCount: output, totalTokenCount: input + output },
        })
      return
    }
    res.writeHead(404, { 'content-type': 'application/json' })
    res.end(JSON.stringify(errorBody(provider, 404, `no route for ${req.method} ${path}`)))
  }

  private text(n: number): string {
    return Array.from({ length: n }, (_, i) => `chunk${i}`).join(' ')
  }

  private json(res: http.ServerResponse, body: unknown): void {
    const s = JSON.stringify(body)
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) })
    res.end(s)
  }

  /** Writes events; honours interval, stall and drop. Returns false if the stream was cut. */
  private async stream(
    res: http.ServerResponse,
    head: string[],
    content: string[],
    tail: string[],
    b: UpstreamBehaviour,
  ): Promise<void> {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
    res.flushHeaders()
    for (const e of head) res.write(e)
    for (let i = 0; i < content.length; i++) {
      if (b.dropAfterChunks !== undefined && i >= b.dropAfterChunks) {
        res.socket?.destroy()
        return
      }
      if (b.stallAfterChunks !== undefined && i >= b.stallAfterChunks) return
      if (i > 0 && b.chunkIntervalMs) await sleep(b.chunkIntervalMs)
      if (res.destroyed) return
      res.write(content[i])
    }
    for (const e of tail) res.write(e)
    res.end()
  }

  private async anthropicStream(
    res: http.ServerResponse,
    model: string,
    n: number,
    input: number,
    output: number,
    b: UpstreamBehaviour,
  ): Promise<void> {
    const ev = (type: string, data: unknown): string => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`
    const id = `msg_${randomBytes(8).toString('hex')}`
    await this.stream(
      res,
      [
        ev('message_start', {
          type: 'message_start',
          message: {
            id,
            type: 'message',
            role: 'assistant',
            model,
            content: [],
            stop_reason: null,
            stop_sequence: null,
            usage: { input_tokens: input, output_tokens: 1 },
          },
        }),
        ev('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
        ev('ping', { type: 'ping' }),
      ],
      Array.from({ length: n }, (_, i) =>
        ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: `chunk${i} ` } }),
      ),
      [
        ev('content_block_stop', { type: 'content_block_stop', index: 0 }),
        ev('message_delta', {
          type: 'message_delta',
          delta: { stop_reason: 'end_turn', stop_sequence: null },
          usage: { output_tokens: output },
        }),
        ev('message_stop', { type: 'message_stop' }),
      ],
      b,
    )
  }

  private async openaiStream(
    res: http.ServerResponse,
    model: string,
    n: number,
    input: number,
    output: number,
    includeUsage: boolean,
    b: UpstreamBehaviour,
  ): Promise<void> {
    const id = `chatcmpl-${randomBytes(8).toString('hex')}`
    const created = Math.floor(Date.now() / 1000)
    const chunk = (delta: unknown, finish: string | null, usage?: unknown): string =>
      `data: ${JSON.stringify({
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        choices: delta === null ? [] : [{ index: 0, delta, finish_reason: finish }],
        ...(usage !== undefined ? { usage } : includeUsage ? { usage: null } : {}),
      })}\n\n`
    const tail = [chunk({}, 'stop')]
    if (includeUsage) tail.push(chunk(null, null, { prompt_tokens: input, completion_tokens: output, total_tokens: input + output }))
    tail.push('data: [DONE]\n\n')
    await this.stream(
      res,
      [chunk({ role: 'assistant', content: '' }, null)],
      Array.from({ length: n }, (_, i) => chunk({ content: `chunk${i} ` }, null)),
      tail,
      b,
    )
  }

  private async geminiStream(
    res: http.ServerResponse,
    n: number,
    input: number,
    output: number,
    b: UpstreamBehaviour,
  ): Promise<void> {
    const data = (i: number, last: boolean): string =>
      `data: ${JSON.stringify({
        candidates: [
          { content: { role: 'model', parts: [{ text: `chunk${i} ` }] }, ...(last ? { finishReason: 'STOP' } : {}), index: 0 },
        ],
        usageMetadata: last
          ? { promptTokenCount: input, candidatesTokenCount: output, totalTokenCount: input + output }
          : { promptTokenCount: input },
      })}\r\n\r\n`
    await this.stream(res, [], Array.from({ length: n }, (_, i) => data(i, i === n - 1)), [], b)
  }
}
