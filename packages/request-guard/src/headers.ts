import type { IncomingHttpHeaders } from 'node:http'
import type { Refusal } from './refusal'

/** The methods whose body the guard reads and checks; any other method must come without one. */
export const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH'])

/** A Content-Type other than JSON in UTF-8: the refusal, or undefined when it is acceptable. */
export function mediaTypeRefusal(headers: IncomingHttpHeaders): Refusal | undefined {
  const raw = headers['content-type']
  if (raw === 'application/json') return undefined // what nearly every client sends
  const [type = '', ...params] = (raw ?? '').split(';')
  const media = type.trim().toLowerCase()
  if (media !== 'application/json' && !/^application\/[a-z0-9.!#$&^_-]+\+json$/.test(media)) {
    return {
      status: 415,
      code: 'GH_RG_UNSUPPORTED_MEDIA_TYPE',
      message: raw
        ? 'Content-Type must be application/json'
        : 'Content-Type is required and must be application/json',
      openaiCode: 'unsupported_media_type',
    }
  }
  for (const param of params) {
    const [k = '', v = ''] = param.split('=')
    if (k.trim().toLowerCase() !== 'charset') continue
    const charset = v.trim().replace(/^"|"$/g, '').toLowerCase()
    if (charset !== 'utf-8' && charset !== 'utf8') {
      return {
        status: 415,
        code: 'GH_RG_UNSUPPORTED_MEDIA_TYPE',
        message: 'the JSON body must be UTF-8 (charset=utf-8)',
        openaiCode: 'unsupported_media_type',
      }
    }
  }
  return undefined
}

/** A compressed or otherwise encoded body: the refusal, or undefined when the body is plain. */
export function encodingRefusal(headers: IncomingHttpHeaders): Refusal | undefined {
  if (headers['content-encoding'] === undefined && headers['transfer-encoding'] === undefined)
    return undefined
  const ce = (headers['content-encoding'] ?? '').trim().toLowerCase()
  const te = (headers['transfer-encoding'] ?? '').trim().toLowerCase()
  if ((ce && ce !== 'identity') || (te && te !== 'chunked')) {
    return {
      status: 415,
      code: 'GH_RG_UNSUPPORTED_ENCODING',
      message: 'compressed or encoded request bodies are not accepted; send plain JSON',
      openaiCode: 'unsupported_media_type',
    }
  }
  return undefined
}

export const hasBody = (headers: IncomingHttpHeaders): boolean =>
  headers['transfer-encoding'] !== undefined ||
  (headers['content-length'] !== undefined && headers['content-length'] !== '0')

/**
 * The path of a request target without its query; an absolute-form target (`POST http://x/v1/…`)
 * is read for its path, so it is checked exactly like the origin form the router sees.
 */
export function originPath(target: string): string {
  let path = target.split('?')[0] ?? '/'
  if (path.charCodeAt(0) !== 0x2f) {
    try {
      path = new URL(path).pathname
    } catch {
      path = '/'
    }
  }
  return path
}
