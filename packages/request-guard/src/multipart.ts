import type { IncomingHttpHeaders } from 'node:http'
import type { Refusal } from './refusal'

/**
 * File uploads (`multipart/form-data`, the endpoints the provider registry marks so): the guard
 * checks that the body is the multipart its Content-Type declares and scans it for credentials;
 * there is no model call to validate. Parsing the parts is the provider's: the guard only needs the
 * framing to be what it claims, so nothing smuggles a second body past a proxy that reads it
 * differently.
 */

/** A file upload's body that is not what its Content-Type declares (400). */
export const malformedUpload = (message: string): Refusal => ({ status: 400, code: 'GH_RG_MALFORMED_UPLOAD', message, openaiCode: null })

/** RFC 2046 §5.1.1: 1 to 70 characters of this set, not ending in a space. */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/

const unsupported = (message: string): Refusal => ({
  status: 415,
  code: 'GH_RG_UNSUPPORTED_MEDIA_TYPE',
  message,
  openaiCode: 'unsupported_media_type',
})

/** The boundary a file upload's Content-Type declares, or the refusal. */
export function multipartBoundary(headers: IncomingHttpHeaders): string | Refusal {
  const raw = headers['content-type'] ?? ''
  const [type = '', ...params] = raw.split(';')
  if (type.trim().toLowerCase() !== 'multipart/form-data')
    return unsupported(raw ? 'Content-Type must be multipart/form-data for a file upload' : 'Content-Type is required and must be multipart/form-data for a file upload')
  let boundary: string | undefined
  for (const param of params) {
    const eq = param.indexOf('=')
    if (eq === -1 || param.slice(0, eq).trim().toLowerCase() !== 'boundary') continue
    if (boundary !== undefined) return unsupported('Content-Type names more than one multipart boundary')
    boundary = param.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1')
  }
  if (boundary === undefined || !BOUNDARY.test(boundary)) return unsupported('Content-Type must name a multipart boundary of 1 to 70 characters')
  return boundary
}

/**
 * Whether `body` is framed by `boundary`: it opens with the first delimiter and ends with the
 * closing one (an optional line break after it), as every client writes it.
 */
export function framingRefusal(body: Buffer, boundary: string): Refusal | undefined {
  const open = Buffer.from(`--${boundary}\r\n`, 'latin1')
  const close = `\r\n--${boundary}--`
  const tail = body.toString('latin1', Math.max(0, body.length - close.length - 2))
  const closed = tail.endsWith(close) || tail.endsWith(`${close}\r\n`)
  if (!body.subarray(0, open.length).equals(open) || !closed)
    return malformedUpload('the request body is not multipart/form-data framed by the boundary its Content-Type names')
  return undefined
}
