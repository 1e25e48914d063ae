import { isFinalEvent, usageFromObject, usageOfJsonText, type Json, type TokenUsage } from './usage-read'

export { usageFromObject, type TokenUsage } from './usage-read'

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
