/** Token usage as the upstream reports it. */
export interface TokenUsage {
  inputTokens: number
  outputTokens: number
}

type Json = Record<string, unknown>

const num = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined
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
    if (
      input !== undefined &&
      (input > 0 || usage.input_tokens !== undefined || usage.prompt_tokens !== undefined)
    )
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
    if (gemini.candidatesTokenCount !== undefined || gemini.thoughtsTokenCount !== undefined)
      out.outputTokens = output
    return out
  }
  return undefined
}

const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09

/**
 * Where the first `}` or `]` from `from` that closes a bracket opened before `from` is, outside
 * strings (a backslash in a string escapes the next character), or -1 when there is none.
 */
function unmatchedCloser(text: string, from: number): number {
  let depth = 0
  let inString = false
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++
      else if (c === 0x22) inString = false
      continue
    }
    if (c === 0x22) inString = true
    else if (c === 0x7b || c === 0x5b) depth++
    else if ((c === 0x7d || c === 0x5d) && --depth < 0) return i
  }
  return -1
}

/** Where the object that starts at `start` (a `{`) ends (exclusive), or -1 when it does not close. */
function objectEnd(text: string, start: number): number {
  const close = unmatchedCloser(text, start + 1)
  return close !== -1 && text.charCodeAt(close) === 0x7d ? close + 1 : -1
}

/**
 * Whether the text from `from` (just after a member's value, outside any string) closes exactly
 * one object and then ends: the member belongs to the outermost object, or to the last object of
 * an outermost array (Gemini's streamGenerateContent without `alt=sse` answers a JSON array of
 * chunks). A member of a nested object (a tool call's input) is followed by more closing brackets.
 */
function closesOutermost(text: string, from: number): boolean {
  const close = unmatchedCloser(text, from)
  if (close === -1 || text.charCodeAt(close) !== 0x7d) return false
  let j = close + 1
  while (j < text.length && isSpace(text.charCodeAt(j))) j++
  if (text.charCodeAt(j) === 0x5d) j++
  while (j < text.length && isSpace(text.charCodeAt(j))) j++
  return j === text.length
}

/** How many `"usage…"` keys are tried, from the end, before the scan gives up. */
const MAX_CANDIDATES = 16

/**
 * The usage of a provider's JSON body (or of its last bytes), found without parsing the content:
 * the last `"usage"` or `"usageMetadata"` member of the outermost object whose value is an object,
 * which the providers write after the content. Only text outside strings can match: in valid JSON a
 * quote inside a string is escaped, so `"usage"` preceded by `{` or `,` is a key, and a key of a
 * nested object (an Anthropic tool_use input, a Gemini functionCall's args, which a model fills in)
 * fails the outermost check. Reads from the end, so it works on a tail whose start is unknown.
 * Returns null when the text names no usage key at all, undefined when none of them is the
 * outermost object's (or the scan gave up).
 */
function usageOfJsonText(text: string): Partial<TokenUsage> | null | undefined {
  let from = text.length
  let seen = 0
  while (from > 0 && seen < MAX_CANDIDATES) {
    const at = text.lastIndexOf('"usage', from - 1)
    if (at === -1) break
    from = at
    let i = at + 6
    let key: 'usage' | 'usageMetadata'
    if (text.charCodeAt(i) === 0x22) key = 'usage'
    else if (text.startsWith('Metadata"', i)) {
      key = 'usageMetadata'
      i += 8
    } else continue
    i++
    seen++
    let b = at - 1
    while (b >= 0 && isSpace(text.charCodeAt(b))) b--
    if (b < 0 || (text.charCodeAt(b) !== 0x2c && text.charCodeAt(b) !== 0x7b)) continue
    while (i < text.length && isSpace(text.charCodeAt(i))) i++
    if (text.charCodeAt(i) !== 0x3a) continue
    i++
    while (i < text.length && isSpace(text.charCodeAt(i))) i++
    if (text.charCodeAt(i) !== 0x7b) continue
    const end = objectEnd(text, i)
    if (end === -1 || !closesOutermost(text, end)) continue
    try {
      return usageFromObject({ [key]: JSON.parse(text.slice(i, end)) as unknown }) ?? undefined
    } catch {
      return undefined
    }
  }
  return seen === 0 ? null : undefined
}

/**
 * Whether a stream event's usage is the answer's final figure. Anthropic's message_start carries
 * the prompt and a first output count (message_delta has the total); Gemini repeats usageMetadata
 * on every chunk and has the total only on the one with a finishReason; the Responses API's totals
 * come with response.completed, .incomplete or .failed. OpenAI chat's usage chunk is the last one.
 */
function isFinalEvent(o: Json): boolean {
  const type = o.type
  if (type === 'message_start') return false
  if (typeof type === 'string' && type.startsWith('response.'))
    return type === 'response.completed' || type === 'response.incomplete' || type === 'response.failed'
  if (o.usageMetadata !== undefined && Array.isArray(o.candidates) && o.candidates.length > 0)
    return o.candidates.some((c) => {
      const reason = obj(c)?.finishReason
      return reason !== undefined && reason !== null
    })
  return true
}

/** `"usage": {` or `"usageMetadata": {`: a usage object, not OpenAI's `"usage":null` on every chunk. */
const USAGE_OBJECT = /sage(?:Metadata)?"\s*:\s*\{/

const SAGE = Buffer.from('sage')

/** Where the first usage object starts in a chunk, or -1: looks at bytes, decodes nothing. */
function usageObjectAt(chunk: Buffer): number {
  let from = 0
  for (;;) {
    const at = chunk.indexOf(SAGE, from)
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
 * the provider put in it: JSON bodies (buffered up to 4 MiB, copies only; past that, the last
 * 64 KiB, where the providers put the usage) and SSE streams (parsed line by line; only `data:`
 * lines that mention a usage object are parsed). A stream reports usage only when its final usage
 * event came: one that ended early reports none, whatever its first events said.
 */
export class UsageMeter {
  private readonly sse: boolean
  /** The JSON body so far, or past MAX_JSON_BYTES its last chunks (at least TAIL_BYTES of them). */
  private jsonChunks: Buffer[] = []
  private jsonBytes = 0
  private keptBytes = 0
  private overflow = false
  private pending = ''
  private result: Partial<TokenUsage> = {}
  /** A stream's final usage event came (see isFinalEvent). */
  private final = false

  constructor(contentType: string | undefined) {
    this.sse = (contentType ?? '').toLowerCase().includes('text/event-stream')
  }

  push(chunk: Buffer | string): void {
    if (!this.sse) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      this.jsonBytes += buf.length
      this.keptBytes += buf.length
      this.jsonChunks.push(buf)
      if (this.jsonBytes > MAX_JSON_BYTES) {
        // Too large to keep whole: keep its end, where the providers put the usage object.
        this.overflow = true
        while (this.jsonChunks.length > 1 && this.keptBytes - this.jsonChunks[0]!.length >= TAIL_BYTES)
          this.keptBytes -= this.jsonChunks.shift()!.length
      }
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
    let event: unknown
    try {
      event = JSON.parse(line.slice(5).trim())
    } catch {
      return // not JSON ([DONE] or a partial line): nothing to read
    }
    const usage = usageFromObject(event)
    if (!usage) return
    this.merge(usage)
    if (isFinalEvent(event as Json)) this.final = true
  }

  private merge(u: Partial<TokenUsage> | undefined): void {
    if (!u) return
    if (u.inputTokens !== undefined) this.result.inputTokens = u.inputTokens
    if (u.outputTokens !== undefined) this.result.outputTokens = u.outputTokens
  }

  /**
   * Call when the body has ended. Returns the usage, or undefined if the upstream reported none (or,
   * for a stream, not its final figure).
   */
  finish(): TokenUsage | undefined {
    if (this.sse) {
      if (this.pending) this.line(this.pending)
      this.pending = ''
      if (!this.final) return undefined
    } else if (this.jsonChunks.length > 0) {
      const all = this.jsonChunks.length === 1 ? this.jsonChunks[0]! : Buffer.concat(this.jsonChunks)
      this.jsonChunks = []
      if (this.overflow) {
        // Only the end is known: the usage must be found there, as a member of the outermost object.
        const tail = all.length > TAIL_BYTES ? all.subarray(all.length - TAIL_BYTES) : all
        const found = usageOfJsonText(tail.toString('utf8'))
        if (found) this.merge(found)
      } else {
        const text = all.toString('utf8')
        const found = usageOfJsonText(text)
        if (found) this.merge(found)
        else if (found === undefined) {
          // A usage key the scan could not place: parse the whole body (at most 4 MiB) to be sure.
          try {
            const parsed = JSON.parse(text) as unknown
            this.merge(usageFromObject(Array.isArray(parsed) ? parsed[parsed.length - 1] : parsed))
          } catch {
            // not JSON
          }
        }
      }
    }
    if (this.result.inputTokens === undefined && this.result.outputTokens === undefined) return undefined
    return { inputTokens: this.result.inputTokens ?? 0, outputTokens: this.result.outputTokens ?? 0 }
  }
}
