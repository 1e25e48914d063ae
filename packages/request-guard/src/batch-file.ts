import { isUtf8 } from 'node:buffer'
import busboy from 'busboy'
import type { RequestGuardConfig } from './options'
import type { Endpoint, EndpointKind } from './endpoints'
import type { BodyValidators } from './schemas'
import { scanJson } from './scan'
import { CAP_KEYS } from './caps'
import { formatField } from './fields'
import { checkBody } from './check'
import { applyEdits } from './rewrite'
import { FAILURES, type Refusal } from './refusal'
import { malformedUpload } from './multipart'

/**
 * An OpenAI batch input file (`purpose=batch`): JSON lines, each a request the provider runs later,
 * after the gateway has answered. Each is checked here as the request it is (schema, caps written in
 * or refused, choices held), its model is handed to the key's models scope, and the file's bound
 * (every line's prompt and output) is what the upload reserves and is charged. The provider then
 * gets the file as the gateway read it.
 */

/** OpenAI's batch endpoints (each line's `url`), and the body each takes. */
const BATCH_URLS: Readonly<Record<string, EndpointKind>> = {
  '/v1/chat/completions': 'openai.chat',
  '/v1/completions': 'openai.completions',
  '/v1/embeddings': 'openai.embeddings',
  '/v1/responses': 'openai.responses',
}

/** OpenAI's limit on the requests of one batch. */
export const MAX_BATCH_LINES = 50_000

/** The members of a line, as OpenAI documents them. */
const LINE_KEYS: ReadonlySet<string> = new Set(['custom_id', 'method', 'url', 'body'])

/** One part of a multipart body, as read. */
interface Part {
  name: string
  filename?: string
  mimeType: string
  data: Buffer
}

/** What a checked batch upload hands on. */
export interface BatchUpload {
  /** The multipart body to forward: the parts as read, the file's lines as checked. */
  body: Buffer
  models: string[]
  promptTokens: number
  outputTokens: number
  /** Caps lowered (`onOverCap: 'clamp'`), as `line 3: max_tokens`. */
  clamped: string[]
  /** Caps written in where a line set none, as `line 3: max_completion_tokens`. */
  inserted: string[]
  /** Each line's endpoint (the registry's id) and body, as forwarded. */
  requests: { endpoint: string; body: Record<string, unknown> }[]
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

const invalid = (message: string, field?: string): Refusal => ({ status: 400, code: 'GH_RG_INVALID_BODY', message, ...(field !== undefined ? { field } : {}), openaiCode: 'invalid_value' })

/**
 * The parts of a multipart body (whose framing is checked already). busboy reads it, as a server
 * would; more than one file, or more than 16 parts, is not an upload the provider documents.
 */
function readParts(body: Buffer, contentType: string): Promise<Part[] | Refusal> {
  return new Promise((resolve) => {
    const parts: Part[] = []
    let refusal: Refusal | undefined
    const refuse = (r: Refusal): void => {
      refusal ??= r
    }
    const bb = busboy({ headers: { 'content-type': contentType }, limits: { parts: 16, files: 1, fieldSize: body.length, fileSize: body.length }, preservePath: true, defParamCharset: 'utf8' })
    bb.on('field', (name, value, info) => parts.push({ name, mimeType: info.mimeType, data: Buffer.from(value, 'utf8') }))
    bb.on('file', (name, stream, info) => {
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => parts.push({ name, filename: info.filename ?? '', mimeType: info.mimeType, data: Buffer.concat(chunks) }))
    })
    for (const limit of ['partsLimit', 'filesLimit', 'fieldsLimit'] as const) bb.on(limit, () => refuse(malformedUpload('an upload carries one file and a few fields')))
    bb.on('error', () => resolve(refusal ?? malformedUpload('the request body is not multipart/form-data framed by the boundary its Content-Type names')))
    bb.on('close', () => resolve(refusal ?? parts))
    bb.end(body)
  })
}

/** The part's `Content-Disposition` value, escaped as browsers do (a quote or line break cannot end it). */
const quoted = (s: string): string => `"${s.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A')}"`

function writeParts(parts: readonly Part[], boundary: string): Buffer {
  const out: Buffer[] = []
  for (const p of parts) {
    const disposition = `form-data; name=${quoted(p.name)}${p.filename !== undefined ? `; filename=${quoted(p.filename)}` : ''}`
    const type = p.filename !== undefined ? `\r\nContent-Type: ${p.mimeType.replace(/[\r\n]/g, '')}` : ''
    out.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}${type}\r\n\r\n`, 'utf8'), p.data, Buffer.from('\r\n'))
  }
  out.push(Buffer.from(`--${boundary}--\r\n`))
  return Buffer.concat(out)
}

/**
 * Check an OpenAI file upload: undefined when it is not a batch input (handed on as it is), the
 * refusal, or the checked upload. `contentType` and `boundary` are the request's (already checked).
 */
export async function checkBatchUpload(
  config: RequestGuardConfig,
  validators: BodyValidators,
  body: Buffer,
  contentType: string,
  boundary: string,
): Promise<BatchUpload | Refusal | undefined> {
  const parts = await readParts(body, contentType)
  if (!Array.isArray(parts)) return parts
  const purposes = parts.filter((p) => p.name === 'purpose' && p.filename === undefined)
  if (purposes.length !== 1 || purposes[0]!.data.toString('utf8') !== 'batch') {
    // Only an exact `batch` is a batch input. Two purposes are refused: the provider might read either.
    if (purposes.length > 1) return invalid('purpose: must be sent once', 'purpose')
    return undefined
  }
  const files = parts.filter((p) => p.filename !== undefined)
  if (files.length !== 1 || files[0]!.name !== 'file') return invalid('file: a batch upload carries exactly one file, in the field "file"', 'file')
  const file = files[0]!
  const lines = await checkLines(config, validators, file.data)
  if ('status' in lines) return lines
  // A line serialised again could only hold the boundary if a string spelled it in escapes.
  if (lines.data.includes(`\r\n--${boundary}`)) return malformedUpload('the batch file holds the upload boundary')
  const checked: Part = { ...file, data: lines.data }
  const { models, promptTokens, outputTokens, clamped, inserted, requests } = lines
  return { body: writeParts(parts.map((p) => (p === file ? checked : p)), boundary), models, promptTokens, outputTokens, clamped, inserted, requests }
}

/** Lines checked between two turns of the event loop: a 10 MB file blocked it for 0.3-0.5 s in one go. */
const LINES_PER_TURN = 256

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** Every line of a batch input file checked as the request it is, a few hundred lines a turn. */
async function checkLines(config: RequestGuardConfig, validators: BodyValidators, data: Buffer): Promise<Refusal | (Omit<BatchUpload, 'body'> & { data: Buffer })> {
  if (!isUtf8(data) || (data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf)) return invalid('file: a batch file must be UTF-8 JSON lines, without a byte order mark', 'file')
  const text = data.toString('utf8')
  const lines = text.split('\n')
  const out: string[] = []
  const models: string[] = []
  let promptTokens = 0
  let outputTokens = 0
  const clamped: string[] = []
  const inserted: string[] = []
  const requests: BatchUpload['requests'] = []
  for (const [i, raw] of lines.entries()) {
    if (i > 0 && i % LINES_PER_TURN === 0) await nextTurn()
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw
    if (line.trim() === '') {
      out.push(raw)
      continue
    }
    const at = `line ${i + 1}`
    if (requests.length >= MAX_BATCH_LINES) return invalid(`file: a batch holds at most ${MAX_BATCH_LINES} requests`, 'file')
    const scan = scanJson(line, config, CAP_KEYS)
    if (scan.kind === 'syntax') return invalid(`file ${at}: not valid JSON`, 'file')
    if (scan.kind !== 'ok') {
      const r = FAILURES[scan.kind](formatField(scan.path), config)
      return { ...r, message: `file ${at}: ${r.message}` }
    }
    let entry: unknown
    try {
      entry = JSON.parse(line)
    } catch {
      return invalid(`file ${at}: not valid JSON`, 'file')
    }
    if (!isObject(entry) || Object.keys(entry).some((k) => !LINE_KEYS.has(k))) return invalid(`file ${at}: a line has custom_id, method, url and body, and nothing else`, 'file')
    const kind = typeof entry.url === 'string' ? BATCH_URLS[entry.url] : undefined
    if (entry.method !== 'POST' || kind === undefined || typeof entry.custom_id !== 'string' || !isObject(entry.body))
      return invalid(`file ${at}: needs a custom_id, method "POST", a url among ${Object.keys(BATCH_URLS).join(', ')}, and a body object`, 'file')
    const endpoint: Endpoint = { kind, provider: 'openai', dialect: 'openai' }
    const result = checkBody(config, validators, 'POST', endpoint, entry.body)
    if ('status' in result) return { ...result, message: `file ${at}: body.${result.message}` }
    if (typeof entry.body.model === 'string') models.push(entry.body.model)
    // The registry's id of each batch endpoint is the kind the guard checks its body as.
    requests.push({ endpoint: kind, body: entry.body })
    if (result.clamps.length > 0 || result.inserts.length > 0) {
      applyEdits(entry.body, result)
      for (const e of result.clamps) clamped.push(`${at}: ${formatField(e.path)}`)
      for (const e of result.inserts) inserted.push(`${at}: ${formatField(e.path)}`)
      out.push(JSON.stringify(entry))
    } else out.push(raw)
    promptTokens += Math.ceil(Buffer.byteLength(line) / 4)
    outputTokens += result.outputTokens
  }
  if (requests.length === 0) return invalid('file: a batch file holds at least one request', 'file')
  return { data: Buffer.from(out.join('\n'), 'utf8'), models, promptTokens, outputTokens, clamped, inserted, requests }
}
