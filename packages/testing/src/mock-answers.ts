import { randomBytes } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'

/** What the mock knows of a request when it builds a JSON answer. */
export interface AnswerContext {
  method: string
  path: string
  headers: IncomingHttpHeaders
  request: Record<string, unknown>
  model: string
  text: string
  input: number
  output: number
}

const VECTOR = [0.1, 0.2, 0.3]

const id = (prefix: string): string => `${prefix}${randomBytes(8).toString('hex')}`

/** The first function tool a chat request offers, if any. */
function firstTool(request: Record<string, unknown>): string | undefined {
  const tools = Array.isArray(request.tools) ? (request.tools as { function?: { name?: unknown } }[]) : []
  const name = tools[0]?.function?.name
  return typeof name === 'string' ? name : undefined
}

/**
 * The JSON answers of the endpoints beside the model calls, in each provider's own shape: the model
 * list (Anthropic's page when `anthropic-version` is sent), embeddings, moderations, OpenAI
 * Responses, Anthropic count_tokens, and an OpenAI chat completion (a call of the first tool when
 * the request offers tools). `undefined` when the path is not one of them.
 */
export function jsonAnswer(c: AnswerContext): unknown {
  if (c.method === 'GET' && c.path.startsWith('/v1/models')) {
    if (c.headers['anthropic-version'] !== undefined) {
      const model = { type: 'model', id: 'claude-mock', display_name: 'Claude Mock', created_at: '2026-01-01T00:00:00Z' }
      return { data: [model], has_more: false, first_id: model.id, last_id: model.id }
    }
    return { object: 'list', data: [{ id: 'mock-model', object: 'model', created: 0, owned_by: 'mock' }] }
  }
  if (c.path === '/v1/embeddings') {
    return {
      object: 'list',
      // The OpenAI SDK asks for base64 (little-endian float32) unless told otherwise.
      data: [{ object: 'embedding', index: 0, embedding: c.request.encoding_format === 'base64' ? Buffer.from(new Float32Array(VECTOR).buffer).toString('base64') : VECTOR }],
      model: c.model,
      usage: { prompt_tokens: c.input, total_tokens: c.input },
    }
  }
  if (c.path === '/v1/moderations') {
    return { id: id('modr-'), model: c.model, results: [{ flagged: false, categories: {}, category_scores: {} }] }
  }
  if (c.path === '/v1/messages/count_tokens') return { input_tokens: c.input }
  if (c.path.startsWith('/v1beta/models/') && c.path.endsWith(':batchGenerateContent')) {
    // A long-running operation: the batch runs later, so the answer reports no usage.
    const model = c.path.slice('/v1beta/'.length, -':batchGenerateContent'.length)
    const name = `batches/${randomBytes(8).toString('hex')}`
    const batch = c.request.batch as { display_name?: unknown } | undefined
    return {
      name,
      metadata: { '@type': 'type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch', model, displayName: batch?.display_name ?? '', name, state: 'BATCH_STATE_PENDING', createTime: new Date().toISOString() },
    }
  }
  if (c.path === '/v1/responses') {
    return {
      id: id('resp_'),
      object: 'response',
      created_at: Math.floor(Date.now() / 1000),
      status: 'completed',
      model: c.model,
      output: [
        {
          type: 'message',
          id: id('msg_'),
          status: 'completed',
          role: 'assistant',
          content: [{ type: 'output_text', text: c.text, annotations: [] }],
        },
      ],
      usage: { input_tokens: c.input, output_tokens: c.output, total_tokens: c.input + c.output },
    }
  }
  if (c.path === '/v1/chat/completions' || c.path === '/v1/completions') {
    const tool = firstTool(c.request)
    const message = tool
      ? { role: 'assistant', content: null, tool_calls: [{ id: id('call_'), type: 'function', function: { name: tool, arguments: '{}' } }] }
      : { role: 'assistant', content: c.text }
    return {
      id: id('chatcmpl-'),
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: c.model,
      choices: [{ index: 0, message, finish_reason: tool ? 'tool_calls' : 'stop' }],
      usage: { prompt_tokens: c.input, completion_tokens: c.output, total_tokens: c.input + c.output },
    }
  }
  return undefined
}

export type Provider = 'openai' | 'claude' | 'gemini'

/** Whose error shape a path gets. */
export function providerFor(path: string): Provider {
  if (path.startsWith('/v1/messages')) return 'claude'
  if (path.startsWith('/v1beta/')) return 'gemini'
  return 'openai'
}

/** A provider's error body for `status`; `param` names the OpenAI parameter at fault. */
export function errorBody(provider: Provider, status: number, message: string, param: string | null = null): unknown {
  if (provider === 'claude') {
    const type = status === 401 ? 'authentication_error' : status === 404 ? 'not_found_error' : status === 429 ? 'rate_limit_error' : status >= 500 ? 'api_error' : 'invalid_request_error'
    return { type: 'error', error: { type, message } }
  }
  if (provider === 'gemini') {
    const s = status === 401 ? 'UNAUTHENTICATED' : status === 429 ? 'RESOURCE_EXHAUSTED' : status >= 500 ? 'INTERNAL' : 'INVALID_ARGUMENT'
    return { error: { code: status, message, status: s } }
  }
  const type = status === 429 ? 'requests' : status >= 500 ? 'server_error' : 'invalid_request_error'
  return { error: { message, type, param, code: status === 401 ? 'invalid_api_key' : null } }
}
