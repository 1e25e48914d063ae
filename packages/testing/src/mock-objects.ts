import type { IncomingHttpHeaders } from 'node:http'
import { randomBytes } from 'node:crypto'
import { errorBody } from './mock-answers'

/**
 * The objects a provider keeps per account, for the mock upstream: OpenAI's files and batches
 * (a batch completes when it is first read, its output file written then) and Anthropic's files.
 * The ids, shapes and errors are the providers' own, so a gateway's ownership checks meet what
 * they will meet in production.
 */

/** An answer of the object store: JSON, or a file's bytes. */
export type ObjectAnswer = { status: number; json: unknown } | { status: number; bytes: Buffer; contentType: string }

interface StoredFile {
  id: string
  filename: string
  purpose: string
  bytes: Buffer
  created: number
  anthropic: boolean
}

interface StoredBatch {
  id: string
  endpoint: string
  input_file_id: string
  created_at: number
  output_file_id: string | null
}

const hex = (n: number): string => randomBytes(n).toString('hex')
const unixNow = (): number => Math.floor(Date.now() / 1000)

/**
 * The parts of a multipart/form-data body, by name (test double: enough of RFC 7578 for what the
 * SDKs send; the gateway does not parse parts, the provider does).
 */
function multipartParts(body: Buffer, contentType: string): Map<string, { filename?: string; data: Buffer }> {
  const parts = new Map<string, { filename?: string; data: Buffer }>()
  const boundary = /boundary="?([^";]+)"?/i.exec(contentType)?.[1]
  if (!boundary) return parts
  const text = body.toString('latin1')
  for (const chunk of text.split(`--${boundary}`).slice(1, -1)) {
    const headEnd = chunk.indexOf('\r\n\r\n')
    if (headEnd === -1) continue
    const head = chunk.slice(0, headEnd)
    const name = /name="([^"]*)"/i.exec(head)?.[1]
    if (name === undefined) continue
    const filename = /filename="([^"]*)"/i.exec(head)?.[1]
    const data = Buffer.from(chunk.slice(headEnd + 4, chunk.length - 2), 'latin1')
    parts.set(name, { ...(filename !== undefined ? { filename } : {}), data })
  }
  return parts
}

const openaiError = (status: number, message: string, param: string): ObjectAnswer => ({ status, json: errorBody('openai', status, message, param) })
const anthropicError = (status: number, message: string): ObjectAnswer => ({ status, json: errorBody('claude', status, message) })

export class MockObjects {
  private readonly files = new Map<string, StoredFile>()
  private readonly batches = new Map<string, StoredBatch>()

  /** The answer for a request to the object endpoints, or undefined for any other request. */
  answer(method: string, path: string, headers: IncomingHttpHeaders, body: Buffer, json: Record<string, unknown>): ObjectAnswer | undefined {
    const anthropic = headers['anthropic-version'] !== undefined
    if (path === '/v1/files' && method === 'POST') return this.upload(headers, body, anthropic)
    const file = /^\/v1\/files\/([^/]+)(\/content)?$/.exec(path)
    if (file) return this.fileRequest(method, decodeURIComponent(file[1]!), file[2] !== undefined, anthropic)
    if (anthropic) return undefined
    if (path === '/v1/batches' && method === 'POST') return this.createBatch(json)
    const batch = /^\/v1\/batches\/([^/]+)$/.exec(path)
    if (batch && method === 'GET') return this.readBatch(decodeURIComponent(batch[1]!))
    return undefined
  }

  private upload(headers: IncomingHttpHeaders, body: Buffer, anthropic: boolean): ObjectAnswer {
    const parts = multipartParts(body, String(headers['content-type'] ?? ''))
    const file = parts.get('file')
    if (!file) return anthropic ? anthropicError(400, 'file: Field required') : openaiError(400, "Missing required parameter: 'file'.", 'file')
    const stored: StoredFile = {
      id: anthropic ? `file_${hex(12)}` : `file-${hex(12)}`,
      filename: file.filename ?? 'upload',
      purpose: parts.get('purpose')?.data.toString('utf8') ?? 'user_data',
      bytes: file.data,
      created: unixNow(),
      anthropic,
    }
    this.files.set(stored.id, stored)
    return { status: 200, json: this.fileObject(stored) }
  }

  private fileObject(f: StoredFile): unknown {
    return f.anthropic
      ? { id: f.id, type: 'file', filename: f.filename, mime_type: 'application/octet-stream', size_bytes: f.bytes.length, created_at: new Date(f.created * 1000).toISOString(), downloadable: false }
      : { id: f.id, object: 'file', bytes: f.bytes.length, created_at: f.created, expires_at: null, filename: f.filename, purpose: f.purpose, status: 'processed', status_details: null }
  }

  private fileRequest(method: string, id: string, content: boolean, anthropic: boolean): ObjectAnswer | undefined {
    const f = this.files.get(id)
    if (!f || f.anthropic !== anthropic) return anthropic ? anthropicError(404, `File not found: ${id}`) : openaiError(404, `No such File object: ${id}`, 'id')
    if (method === 'DELETE' && !content) {
      this.files.delete(id)
      return { status: 200, json: anthropic ? { id, type: 'file_deleted' } : { id, object: 'file', deleted: true } }
    }
    if (method !== 'GET') return undefined
    return content ? { status: 200, bytes: f.bytes, contentType: 'application/octet-stream' } : { status: 200, json: this.fileObject(f) }
  }

  private createBatch(json: Record<string, unknown>): ObjectAnswer {
    const input = typeof json.input_file_id === 'string' ? this.files.get(json.input_file_id) : undefined
    if (!input || input.anthropic) return openaiError(400, `No such File object: ${String(json.input_file_id)}`, 'input_file_id')
    const b: StoredBatch = { id: `batch_${hex(12)}`, endpoint: String(json.endpoint ?? ''), input_file_id: input.id, created_at: unixNow(), output_file_id: null }
    this.batches.set(b.id, b)
    return { status: 200, json: this.batchObject(b, 'validating') }
  }

  /** Reading a batch completes it: each input line answered in the output file. */
  private readBatch(id: string): ObjectAnswer {
    const b = this.batches.get(id)
    if (!b) return openaiError(404, `No such Batch object: ${id}`, 'id')
    if (b.output_file_id === null) {
      const out = this.inputLines(b).map((line) => {
        const customId = (JSON.parse(line) as { custom_id?: string }).custom_id ?? null
        const answer = { id: `chatcmpl-${hex(8)}`, object: 'chat.completion', model: 'gpt-4o-mini', choices: [{ index: 0, message: { role: 'assistant', content: `answer to ${customId}` }, finish_reason: 'stop' }], usage: { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 } }
        return JSON.stringify({ id: `batch_req_${hex(8)}`, custom_id: customId, response: { status_code: 200, request_id: hex(8), body: answer }, error: null })
      })
      const output: StoredFile = { id: `file-${hex(12)}`, filename: 'batch_output.jsonl', purpose: 'batch_output', bytes: Buffer.from(out.map((l) => `${l}\n`).join('')), created: unixNow(), anthropic: false }
      this.files.set(output.id, output)
      b.output_file_id = output.id
    }
    return { status: 200, json: this.batchObject(b, 'completed') }
  }

  /** The requests of a batch: its input file's lines. */
  private inputLines(b: StoredBatch): string[] {
    return this.files.get(b.input_file_id)?.bytes.toString('utf8').split('\n').filter(Boolean) ?? []
  }

  private batchObject(b: StoredBatch, status: string): unknown {
    const total = this.inputLines(b).length
    return {
      id: b.id,
      object: 'batch',
      endpoint: b.endpoint,
      errors: null,
      input_file_id: b.input_file_id,
      completion_window: '24h',
      status,
      output_file_id: b.output_file_id,
      error_file_id: null,
      created_at: b.created_at,
      request_counts: { total, completed: status === 'completed' ? total : 0, failed: 0 },
      metadata: null,
    }
  }
}
