import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { errorBody, jsonAnswer, providerFor } from './mock-answers'
import { MockObjects } from './mock-objects'
import { anthropicStream, geminiStream, openaiStream } from './mock-streams'
import { sleep } from './wait'

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
      if (request.stream === true) await anthropicStream(res, model, n, input, output, b)
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
      await openaiStream(res, model, n, input, output, opts.include_usage === true, b)
      return
    }
    if (path.startsWith('/v1beta/models/')) {
      if (path.endsWith(':streamGenerateContent')) await geminiStream(res, n, input, output, b)
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
}
