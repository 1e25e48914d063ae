import zlib from 'node:zlib'
import type { UsageMeter } from '@gatehouse/core'
import { bodyObject, isObject, isSpace, spliced } from './json-body'

/**
 * What the proxy does so that every answer's usage can be metered: it asks OpenAI-style streams
 * for usage (and keeps the extra event from the client), and meters a decompressed copy of an
 * answer an upstream compressed though asked for identity.
 */

/** The endpoints whose streams carry usage only when asked (`stream_options.include_usage`). */
const USAGE_ON_REQUEST: ReadonlySet<string> = new Set([
  'openai.chat',
  'openai.completions',
  'gemini.openai.chat',
])

const STREAM_OPTIONS_MEMBER = Buffer.from('"stream_options":{"include_usage":true}')
const EMPTY = Buffer.alloc(0)
const STREAM_KEY = Buffer.from('"stream"')
const STREAM_OPTIONS_KEY = Buffer.from('"stream_options"')

/**
 * The body with `stream_options.include_usage: true` added, for a stream of an endpoint that
 * reports usage only when asked and was not asked; undefined when nothing is to change. `parsed` is
 * the body as an object when a layer before parsed it (request-guard's or a body parser's
 * `req.body`), which spares parsing it again; the bytes sent are always `body`'s. The member is
 * added before the closing brace, so every byte the client (and request-guard) wrote stays as it
 * was; only a body whose own `stream_options` lacks include_usage is serialised again.
 */
export function withStreamUsage(
  endpoint: string | undefined,
  parsed: unknown,
  body: Buffer,
): Buffer | undefined {
  if (endpoint === undefined || !USAGE_ON_REQUEST.has(endpoint)) return undefined
  if (!isObject(parsed) && body.indexOf(STREAM_KEY) === -1) return undefined
  const o = bodyObject(parsed, body)
  if (o?.stream !== true) return undefined
  const so = o.stream_options
  if (isObject(so) && so.include_usage === true) return undefined
  if (so === undefined && body.indexOf(STREAM_OPTIONS_KEY) === -1) return spliced(body, STREAM_OPTIONS_MEMBER)
  let own: unknown
  try {
    own = JSON.parse(body.toString('utf8'))
  } catch {
    return undefined
  }
  if (!isObject(own) || own.stream !== true) return undefined
  const ownOptions = isObject(own.stream_options) ? own.stream_options : {}
  return Buffer.from(
    JSON.stringify({ ...own, stream_options: { ...ownOptions, include_usage: true } }),
    'utf8',
  )
}

export interface UsageEventFilter {
  push(chunk: Buffer): Buffer
  /** What is still held back when the stream ends. */
  end(): Buffer
}

const CHOICES = Buffer.from('"choices":')
/** An event held longer than this is passed on as it is (no usage-only event is that large). */
const MAX_HELD = 256 * 1024

/**
 * Whether `data[from, to)` holds `"choices":[]` (or `"choices": []`), the mark of a usage-only
 * event. Looks for `[` with single-byte searches, the cheapest Buffer search there is: a content
 * chunk has one or two.
 */
function hasMarker(data: Buffer, from: number, to: number): boolean {
  for (let i = data.indexOf(0x5b, from); i !== -1 && i + 1 < to; i = data.indexOf(0x5b, i + 1)) {
    if (data[i + 1] !== 0x5d) continue
    const end = data[i - 1] === 0x20 ? i - 1 : i
    const start = end - CHOICES.length
    if (start < from) continue
    let match = true
    for (let j = 0; j < CHOICES.length && match; j++) match = data[start + j] === CHOICES[j]
    if (match) return true
  }
  return false
}

/** Where the blank line that ends an event at the line feed `i` ends, or -1 (`\n\n`, `\n\r\n`). */
const separatorEnd = (data: Buffer, i: number): number =>
  data[i + 1] === 0x0a ? i + 2 : data[i + 1] === 0x0d && data[i + 2] === 0x0a ? i + 3 : -1

/** Whether a chunk ends exactly at the end of an event (a blank line). */
const endsEvent = (c: Buffer): boolean => {
  const n = c.length
  return (
    n >= 2 && c[n - 1] === 0x0a && (c[n - 2] === 0x0a || (n >= 3 && c[n - 2] === 0x0d && c[n - 3] === 0x0a))
  )
}

/** Is the event in `data[from, to)` OpenAI's usage-only chunk: `data: {…,"choices":[],"usage":{…}}`? */
function isUsageOnly(data: Buffer, from: number, to: number): boolean {
  if (!hasMarker(data, from, to)) return false
  const lines = data.toString('utf8', from, to).split(/\r?\n/)
  const payload: string[] = []
  for (const raw of lines) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw
    if (line === '') continue
    if (!line.startsWith('data:')) return false
    payload.push(line.slice(line.startsWith('data: ') ? 6 : 5))
  }
  try {
    const o = JSON.parse(payload.join('\n')) as unknown
    return isObject(o) && Array.isArray(o.choices) && o.choices.length === 0 && isObject(o.usage)
  } catch {
    return false
  }
}

/**
 * Drops the usage-only event that `stream_options.include_usage` adds before `data: [DONE]`, for
 * streams where the gateway, not the client, asked for it: the client sees the stream it asked
 * for. Works on bytes (a character split across chunks passes intact). A chunk that is whole events
 * with no `"choices":[]` in it, which is nearly every chunk, is passed on as it is; otherwise whole
 * events are passed on and the start of an unfinished one waits for its end (bounded).
 */
export function createUsageEventFilter(): UsageEventFilter {
  let held = EMPTY
  /** The current event grew past MAX_HELD and was passed on: pass bytes on until it ends. */
  let passing = false
  const filter = (chunk: Buffer): Buffer => {
    if (passing) {
      let cut = -1
      for (let i = chunk.indexOf(0x0a); i !== -1 && cut === -1; i = chunk.indexOf(0x0a, i + 1))
        cut = separatorEnd(chunk, i)
      if (cut === -1) return chunk
      passing = false
      const rest = filter(chunk.subarray(cut))
      return rest.length === chunk.length - cut ? chunk : Buffer.concat([chunk.subarray(0, cut), rest])
    }
    if (held.length === 0 && endsEvent(chunk) && !hasMarker(chunk, 0, chunk.length)) return chunk
    const data = held.length === 0 ? chunk : Buffer.concat([held, chunk])
    const kept: Buffer[] = []
    let keptFrom = 0
    let from = 0
    for (let i = data.indexOf(0x0a); i !== -1;) {
      const end = separatorEnd(data, i)
      if (end === -1) {
        i = data.indexOf(0x0a, i + 1)
        continue
      }
      if (isUsageOnly(data, from, i)) {
        if (from > keptFrom) kept.push(data.subarray(keptFrom, from))
        keptFrom = end
      }
      from = end
      i = data.indexOf(0x0a, end)
    }
    if (data.length - from > MAX_HELD) {
      passing = true
      from = data.length
    }
    held = from < data.length ? Buffer.from(data.subarray(from)) : EMPTY
    if (keptFrom === 0) return data.subarray(0, from)
    if (from > keptFrom) kept.push(data.subarray(keptFrom, from))
    return kept.length === 1 ? kept[0]! : Buffer.concat(kept)
  }
  return {
    push: filter,
    end() {
      const rest = held
      held = EMPTY
      let to = rest.length
      while (to > 0 && isSpace(rest[to - 1])) to--
      return to > 0 && isUsageOnly(rest, 0, to) ? EMPTY : rest
    },
  }
}

/** Most decompressed bytes metered from one answer: past it the usage is left unknown (charged the bound). */
const MAX_INFLATED = 64 * 1024 * 1024
/** Most compressed bytes waiting for the decompressor: past it the usage is left unknown. */
const MAX_QUEUED = 4 * 1024 * 1024

export interface MeteredDecompressor {
  push(chunk: Buffer): void
  /** Call when the body ended; `then` runs once the decompressor has fed the meter everything. */
  end(then: () => void): void
  /** False once decompressing failed or went past a bound: the meter saw part of the answer. */
  readonly ok: boolean
}

/**
 * A zlib decompressor that feeds the meter a decompressed copy of what passes (gzip, deflate, br),
 * bounded in memory: undefined for any other encoding.
 */
export function decompressorFor(
  encoding: string | undefined,
  meter: UsageMeter,
): MeteredDecompressor | undefined {
  const z =
    encoding === 'gzip' || encoding === 'x-gzip'
      ? zlib.createGunzip()
      : encoding === 'deflate'
        ? zlib.createInflate()
        : encoding === 'br'
          ? zlib.createBrotliDecompress()
          : undefined
  if (!z) return undefined
  let seen = 0
  let failed = false
  const stop = (): void => {
    failed = true
    z.destroy()
  }
  z.on('data', (d: Buffer) => {
    seen += d.length
    if (seen > MAX_INFLATED) stop()
    else meter.push(d)
  })
  z.on('error', () => (failed = true))
  return {
    get ok() {
      return !failed
    },
    push(chunk) {
      if (failed) return
      z.write(chunk)
      if (z.writableLength > MAX_QUEUED) stop()
    },
    end(then) {
      if (failed || z.destroyed) return then()
      let called = false
      const once = (): void => {
        if (!called) {
          called = true
          then()
        }
      }
      z.once('end', once)
      z.once('error', once)
      z.once('close', once)
      z.end()
    },
  }
}
