import http from 'node:http'
import { randomBytes } from 'node:crypto'
import type { RequestHandler } from 'express'
import { collectEvents, createTestApp, listen, type RunningServer } from '@gatehouse/testing'
import type { SecurityEvent } from '@gatehouse/core'
import { requestGuard, type RequestGuardOptions } from '@gatehouse/request-guard'

export interface RawResponse {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
  /** The body parsed as JSON, or undefined. */
  json: any // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string
  /** For chunked requests: how many chunks were written before the response arrived. */
  chunksSent: number
}

export interface RawRequest {
  method?: string
  path: string
  headers?: Record<string, string | number>
  /** Sent with Content-Length (unless the headers say otherwise). */
  body?: Buffer | string
  /** Sent chunked, one write per entry, `chunkDelayMs` apart; stops once a response arrives. */
  chunks?: Buffer[]
  chunkDelayMs?: number
}

/**
 * One real HTTP/1.1 request over loopback with full control of the bytes and framing. A response
 * that arrives while the body is still being sent (413) is returned; the write error that follows
 * when the server closes the connection is expected and ignored.
 */
export function send(baseUrl: string, r: RawRequest): Promise<RawResponse> {
  const url = new URL(r.path, baseUrl)
  return new Promise((resolve, reject) => {
    let responded = false
    let chunksSent = 0
    const timer = setTimeout(
      () => reject(new Error(`no response to ${r.method ?? 'POST'} ${r.path} within 10s`)),
      10_000,
    )
    timer.unref()
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method: r.method ?? 'POST',
        headers: r.headers ?? {},
        agent: false,
      },
      (res) => {
        responded = true
        const parts: Buffer[] = []
        res.on('data', (c: Buffer) => parts.push(c))
        res.on('error', () => undefined)
        res.on('end', () => {
          clearTimeout(timer)
          const body = Buffer.concat(parts)
          const text = body.toString('utf8')
          let json: unknown
          try {
            json = JSON.parse(text)
          } catch {
            json = undefined
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json, text, chunksSent })
        })
      },
    )
    req.on('error', (err) => {
      if (!responded) {
        clearTimeout(timer)
        reject(err)
      }
    })
    if (r.chunks) {
      const chunks = r.chunks
      let i = 0
      const pump = (): void => {
        if (responded || req.destroyed) return
        if (i >= chunks.length) {
          req.end()
          return
        }
        req.write(chunks[i++]!)
        chunksSent++
        setTimeout(pump, r.chunkDelayMs ?? 0).unref()
      }
      pump()
    } else {
      req.end(r.body)
    }
  })
}

/** A JSON POST with a correct Content-Length. */
export function postJson(
  baseUrl: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  return send(baseUrl, {
    path,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers },
    body: text,
  })
}

export interface GuardedApp {
  url: string
  events: SecurityEvent[]
  close(): Promise<void>
}

/** createTestApp(before..., requestGuard(options)) listening on 127.0.0.1. */
export async function startGuarded(
  options: RequestGuardOptions = {},
  ...before: RequestHandler[]
): Promise<GuardedApp> {
  const { events, onEvent } = collectEvents()
  const app = createTestApp(...before, requestGuard({ ...options, onEvent }))
  const running: RunningServer = await listen(app)
  return { url: running.url, events, close: () => running.close() }
}

/** A fresh fake secret for leak checks: never a real key. */
export const fakeSecret = (): string => `sk-ant-api03-${randomBytes(24).toString('base64url')}`

/** Bodies that set their output cap, so the guard forwards them byte for byte (it writes one in otherwise). */
export const chat = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'Say hello' }],
  ...('max_tokens' in extra ? {} : { max_completion_tokens: 256 }),
  ...extra,
})

export const claude = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  model: 'claude-sonnet-4-5',
  max_tokens: 1024,
  messages: [{ role: 'user', content: 'Say hello' }],
  ...extra,
})

export const gemini = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  contents: [{ role: 'user', parts: [{ text: 'Say hello' }] }],
  generationConfig: { maxOutputTokens: 256 },
  ...extra,
})

export const GEMINI_PATH = '/v1beta/models/gemini-2.0-flash:generateContent'

/**
 * A guarded app for one describe block: started before its tests, closed after them, its events
 * cleared before each test. The returned object is filled in once the app listens.
 */
export function useGuarded(options: RequestGuardOptions = {}, ...before: RequestHandler[]): GuardedApp {
  const app: GuardedApp = { url: '', events: [], close: () => Promise.resolve() }
  beforeAll(async () => {
    Object.assign(app, await startGuarded(options, ...before))
  })
  afterAll(() => app.close())
  beforeEach(() => {
    app.events.length = 0
  })
  return app
}

export const OPENAI_PATH = '/v1/chat/completions'
export const CLAUDE_PATH = '/v1/messages'

/** The provider-native error shapes of SPEC §3, checked exactly (no extra keys). */
export function expectOpenAIError(json: unknown, param: string | null, code?: string | null): void {
  expect(json).toEqual({
    error: {
      message: expect.any(String),
      type: 'invalid_request_error',
      param,
      code: code === undefined ? expect.anything() : code,
    },
  })
}
export function expectClaudeError(json: unknown, type = 'invalid_request_error'): void {
  expect(json).toEqual({ type: 'error', error: { type, message: expect.any(String) } })
}
export function expectGeminiError(json: unknown, code: number, status = 'INVALID_ARGUMENT'): void {
  expect(json).toEqual({ error: { code, message: expect.any(String), status } })
}
