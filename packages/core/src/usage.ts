/** Token usage as the upstream reports it. */
export interface TokenUsage {
  inputTokens: number
  outputTokens: number
}

type Json = Record<string, unknown>

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined)
const obj = (v: unknown): Json | undefined => (v !== null && typeof v === 'object' ? (v as Json) : undefined)

/**
 * Read usage from one provider JSON object: a whole response body or one SSE event.
 * Returns what it finds; fields not present stay undefined so stream events can be merged.
 */
export function usageFromObject(body: unknown): Partial<TokenUsage> | undefined {
  const o = obj(body)
  if (!o) return undefined
  // Anthropic streams: message_start carries message.usage; message_delta carries usage.
  const message = obj(o.message)
  const response = obj(o.response) // OpenAI Responses API stream: response.completed
  const usage = obj(o.usage) ?? obj(message?.usage) ?? obj(response?.usage)
  if (usage) {
    const input =
      num(usage.input_tokens) !== undefined
        ? (num(usage.input_tokens) ?? 0) +
          (num(usage.cache_creation_input_tokens) ?? 0) +
          (num(usage.cache_read_input_tokens) ?? 0)
        : num(usage.prompt_tokens)
    const output = num(usage.output_tokens) ?? num(usage.completion_tokens)
    const out: Partial<TokenUsage> = {}
    if (input !== undefined && (input > 0 || usage.input_tokens !== undefined || usage.prompt_tokens !== undefined))
      out.inputTokens = input
    if (output !== undefined) out.outputTokens = output
    return out
  }
  const gemini = obj(o.usageMetadata)
  if (gemini) {
    const out: Partial<TokenUsage> = {}
    const input = num(gemini.promptTokenCount)
    const output = (num(gemini.candidatesTokenCount) ?? 0) + (num(gemini.thoughtsTokenCount) ?? 0)
    if (input !== undefined) out.inputTokens = input
    if (gemini.candidatesTokenCount !== undefined || gemini.thoughtsTokenCount !== undefined) out.outputTokens = output
    return out
  }
  return undefined
}

/** The object that starts at `start` (a `{`), as text, or undefined when it does not close. */
function objectTextAt(text: string, start: number): string | undefined {
  let depth = 0
  let inString = false
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // backslash: skip the escaped character
      else if (c === 0x22) inString = false
      continue
    }
    if (c === 0x22) inString = true
    else if (c === 0x7b) depth++
    else if (c === 0x7d && --depth === 0) return text.slice(start, i + 1)
  }
  return undefined
}

/**
 * The usage object of a provider's JSON body, parsed on its own: the last `"usage"` (or Gemini's
 * `"usageMetadata"`) key, which the providers write at the top level after the content, so the
 * content itself (often most of the body) is never parsed. A key inside a string is escaped (`\"`)
 * and cannot match. Returns null when the body names no usage, undefined when it cannot tell.
 */
function usageOfJsonText(text: string, memberOnly = false): Partial<TokenUsage> | null | undefined {
  for (const key of ['"usageMetadata"', '"usage"'] as const) {
    const at = text.lastIndexOf(key)
    if (at === -1) continue
    if (memberOnly) {
      let b = at - 1
      while (b >= 0 && (text[b] === ' ' || text[b] === '\n' || text[b] === '\r' || text[b] === '\t')) b--
      if (text[b] !== ',' && text[b] !== '{') return undefined
    }
    let i = at + key.length
    while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++
    if (text[i] !== ':') return undefined
    i++
    while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++
    if (text[i] !== '{') return undefined
    const inner = objectTextAt(text, i)
    if (inner === undefined) return undefined
    try {
      return usageFromObject({ [key.slice(1, -1)]: JSON.parse(inner) as unknown }) ?? null
    } catch {
      return undefined
    }
  }
  return null
}

/** `"usage": {` or `"usageMetadata": {`: a usage object, not OpenAI's `"usage":null` on every chunk. */
const USAGE_OBJECT = /sage(?:Metadata)?"\s*:\s*\{/

/** Where the first usage object starts in a chunk, or -1: looks at bytes, decodes nothing. */
function usageObjectAt(chunk: Buffer): number {
  let from = 0
  for (;;) {
    const at = chunk.indexOf('sage', from)
    if (at === -1) return -1
    let i = at + 4
    if (chunk[i] === 0x4d) i += 8 // Metadata
    if (chunk[i] === 0x22) {
      i++
      while (chunk[i] === 0x20) i++
      if (chunk[i] === 0x3a) {
        i++
        while (chunk[i] === 0x20) i++
        // A usage object, or the chunk ends before we can tell: look closer.
        if (chunk[i] === 0x7b || i >= chunk.length) return at
      }
    } else if (i >= chunk.length) return at
    from = at + 4
  }
}

/** How much of the end of an oversized JSON body is kept to find its usage in. */
const TAIL_BYTES = 64 * 1024
const MAX_JSON_BYTES = 4 * 1024 * 1024
const MAX_LINE_BYTES = 1024 * 1024

/**
 * Watches a response body as it passes, without holding up any chunk, and reports the token usage
 * the provider put in it: JSON bodies (buffered up to 4 MiB, copies only) and SSE streams (parsed
 * line by line; only `data:` lines that mention usage are parsed).
 */
export class UsageMeter {
  private readonly sse: boolean
  private jsonChunks: Buffer[] = []
  private jsonBytes = 0
  private pending = ''
  private result: Partial<TokenUsage> = {}
  private overflow = false
  /** The last TAIL_BYTES of a JSON body past MAX_JSON_BYTES. */
  private tail: Buffer = Buffer.alloc(0)

  constructor(contentType: string | undefined) {
    this.sse = (contentType ?? '').toLowerCase().includes('text/event-stream')
  }

  push(chunk: Buffer | string): void {
    if (!this.sse) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      this.jsonBytes += buf.length
      if (this.overflow || this.jsonBytes > MAX_JSON_BYTES) {
        // Too large to keep whole: keep its end, where providers put the usage object.
        const all = this.overflow ? Buffer.concat([this.tail, buf]) : Buffer.concat([...this.jsonChunks, buf])
        this.tail = all.length > TAIL_BYTES ? Buffer.from(all.subarray(all.length - TAIL_BYTES)) : all
        this.overflow = true
        this.jsonChunks = []
        return
      }
      this.jsonChunks.push(buf)
      return
    }
    if (typeof chunk !== 'string' && this.pending === '') {
      // Most stream chunks end on a line break and carry no usage: look at the bytes, decode nothing.
      const lastNl = chunk.lastIndexOf(0x0a)
      const at = lastNl === -1 ? -1 : usageObjectAt(chunk)
      if (lastNl !== -1 && (at === -1 || at > lastNl)) {
        if (lastNl < chunk.length - 1) this.pending = chunk.toString('utf8', lastNl + 1)
        return
      }
    }
    this.pending += typeof chunk === 'string' ? chunk : chunk.toString('utf8')
    let nl: number
    while ((nl = this.pending.indexOf('\n')) !== -1) {
      const line = this.pending.slice(0, nl)
      this.pending = this.pending.slice(nl + 1)
      this.line(line)
    }
    if (this.pending.length > MAX_LINE_BYTES) this.pending = ''
  }

  private line(raw: string): void {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw
    if (!line.startsWith('data:')) return
    if (!USAGE_OBJECT.test(line)) return // usage / usageMetadata with an object (not `"usage":null`)
    try {
      this.merge(usageFromObject(JSON.parse(line.slice(5).trim())))
    } catch {
      // not JSON ([DONE] or a partial line): nothing to read
    }
  }

  private merge(u: Partial<TokenUsage> | undefined): void {
    if (!u) return
    if (u.inputTokens !== undefined) this.result.inputTokens = u.inputTokens
    if (u.outputTokens !== undefined) this.result.outputTokens = u.outputTokens
  }

  /** Call when the body has ended. Returns the usage, or undefined if the upstream reported none. */
  finish(): TokenUsage | undefined {
    if (this.sse) {
      if (this.pending) this.line(this.pending)
      this.pending = ''
    } else if (!this.overflow && this.jsonChunks.length > 0) {
      const text = (this.jsonChunks.length === 1 ? this.jsonChunks[0]! : Buffer.concat(this.jsonChunks)).toString('utf8')
      const found = usageOfJsonText(text)
      if (found !== null) {
        try {
          this.merge(found ?? usageFromObject(JSON.parse(text)))
        } catch {
          // not JSON
        }
      }
      this.jsonChunks = []
    } else if (this.overflow) {
      // Only a usage object that is a member of an object (after `{` or `,`) counts: a model's
      // output that quotes `"usage": {…}` sits inside a string, its quotes escaped.
      const found = usageOfJsonText(this.tail.toString('utf8'), true)
      if (found) this.merge(found)
      this.tail = Buffer.alloc(0)
    }
    if (this.result.inputTokens === undefined && this.result.outputTokens === undefined) return undefined
    return { inputTokens: this.result.inputTokens ?? 0, outputTokens: this.result.outputTokens ?? 0 }
  }
}
