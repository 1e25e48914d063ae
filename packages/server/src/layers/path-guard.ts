import type { RequestHandler } from 'express'
import { detectProvider, sendProviderError } from '@gatehouse/core'

/**
 * Refuse request targets that different parsers could read differently: dot segments (also
 * percent-encoded), empty segments (`//`), backslashes, encoded slashes and NUL. A path that means
 * one thing to the gateway and another to whatever is behind it is how routing checks get bypassed.
 */
const AMBIGUOUS = /(^|\/)\.{1,2}(\/|$)|\/\/|\\|%2e|%2f|%5c|%00/i

const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i

export function pathGuard(): RequestHandler {
  return function pathGuardMiddleware(req, res, next) {
    // Absolute-form targets ("POST http://host/v1/…") are valid HTTP; the authority in them is
    // ignored, as is Host: the upstream is only ever the configured base_url.
    const abs = ABSOLUTE_FORM.exec(req.url)
    if (abs) req.url = req.url.slice(abs[0].length) || '/'
    const url = req.url
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    if (!path.startsWith('/') || AMBIGUOUS.test(path)) {
      sendProviderError(res, detectProvider({ path: '/', headers: req.headers }), 400, { message: 'Malformed request path' })
      return
    }
    next()
  }
}
