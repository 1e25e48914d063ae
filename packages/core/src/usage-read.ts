/**
 * Reading token usage out of provider JSON: from a parsed object (a body or one SSE event), and from
 * JSON text without parsing its content (a body or its last bytes). The streaming meter (usage.ts)
 * calls these; they hold no state.
 */
/** Token usage as the upstream reports it. */
export interface TokenUsage {
  inputTokens: number
  outputTokens: number
}

export type Json = Record<string, unknown>

const num = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined
export const obj = (v: unknown): Json | undefined => (v !== null && typeof v === 'object' ? (v as Json) : undefined)

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
export function usageOfJsonText(text: string): Partial<TokenUsage> | null | undefined {
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
export function isFinalEvent(o: Json): boolean {
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
