/** The JSON request body as the proxy's send step reads and edits it: parsed once by a layer before, or here. */

/** JSON whitespace. */
export const isSpace = (c: number | undefined): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09

/**
 * A JSON object's bytes with one member (`"key":value`) added before its closing brace, every other
 * byte as it was; undefined when the body does not end an object. The caller makes sure the key is
 * not in the body already.
 */
export function spliced(body: Buffer, member: Buffer): Buffer | undefined {
  let end = body.length - 1
  while (end >= 0 && isSpace(body[end])) end--
  if (body[end] !== 0x7d) return undefined
  let before = end - 1
  while (before >= 0 && isSpace(body[before])) before--
  return Buffer.concat([body.subarray(0, end), body[before] === 0x7b ? EMPTY : COMMA, member, body.subarray(end)])
}

const EMPTY = Buffer.alloc(0)
const COMMA = Buffer.from(',')

/** A JSON object (not an array, not a Buffer). */
export const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v)

/**
 * The body as an object: `parsed` when a layer before parsed it (request-guard's or a body parser's
 * `req.body`), which spares parsing it again, else `body`'s bytes parsed; undefined when neither is
 * a JSON object. Callers look at the bytes first, so that most bodies are never parsed here.
 */
export function bodyObject(parsed: unknown, body: Buffer | undefined): Record<string, unknown> | undefined {
  if (isObject(parsed)) return parsed
  if (body === undefined) return undefined
  try {
    const o = JSON.parse(body.toString('utf8')) as unknown
    return isObject(o) ? o : undefined
  } catch {
    return undefined
  }
}
