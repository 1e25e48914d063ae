import http from 'node:http'
import https from 'node:https'
import net from 'node:net'

export interface HttpReply {
  status: number
  headers: http.IncomingHttpHeaders
  /** The body as UTF-8 text. */
  body: string
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown
}

export interface HttpRequestOptions {
  /** The request target, sent as written (an absolute-form target too). @default '/' */
  path?: string
  /** @default 'POST' with a body, 'GET' without */
  method?: string
  headers?: Record<string, string>
  /** Sent whole, with its Content-Length. */
  body?: string | Buffer
  /** @default false: a fresh connection, closed after the answer, so nothing is pooled */
  agent?: http.Agent | false
  /** For https: URLs, the CA to trust and the name to check. */
  ca?: string
  servername?: string
  /** The request fails after this long without a complete answer. @default 10000 */
  timeoutMs?: number
}

/** One real HTTP(S) request over loopback, read to its end: status, headers, text and JSON. */
export function httpRequest(url: string, options: HttpRequestOptions = {}): Promise<HttpReply> {
  const base = new URL(url)
  const timeoutMs = options.timeoutMs ?? 10_000
  const init: https.RequestOptions = {
    hostname: base.hostname.replace(/^\[|\]$/g, ''),
    port: base.port,
    path: options.path ?? '/',
    method: options.method ?? (options.body !== undefined ? 'POST' : 'GET'),
    headers: options.headers ?? {},
    agent: options.agent ?? false,
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
    ...(options.servername !== undefined ? { servername: options.servername } : {}),
  }
  return new Promise((resolve, reject) => {
    const onResponse = (res: http.IncomingMessage): void => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8')
        let json: unknown
        try {
          json = JSON.parse(body)
        } catch {
          json = undefined
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json })
      })
      res.on('error', reject)
    }
    const req = base.protocol === 'https:' ? https.request(init, onResponse) : http.request(init, onResponse)
    req.setTimeout(timeoutMs, () =>
      req.destroy(new Error(`${init.method} ${base.origin}${init.path}: no answer within ${timeoutMs} ms`)),
    )
    req.on('error', reject)
    req.end(options.body)
  })
}

export interface RawReply {
  /** The final status (interim 1xx answers are skipped), 0 when none came. */
  status: number
  /** The final answer's header fields, names lower-cased (a repeated name: the last one). */
  headers: Record<string, string>
  /** Everything after the final answer's head, as latin1 text (not de-chunked). */
  body: string
}

/**
 * Write `text` byte for byte (latin1) on a raw loopback socket and read until the server closes it:
 * for requests fetch and http.request would not send (no Host header, odd framing). `end` also
 * closes the writing side after the text (a client that half-closes). The socket is destroyed after
 * `timeoutMs` (default 10000) and the promise rejects.
 */
export function rawHttp(
  url: string,
  text: string,
  options: { end?: boolean; timeoutMs?: number } = {},
): Promise<RawReply> {
  const u = new URL(url)
  const timeoutMs = options.timeoutMs ?? 10_000
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(u.port), u.hostname.replace(/^\[|\]$/g, ''))
    let got = ''
    socket.setEncoding('latin1')
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(new Error(`${url}: the server did not close within ${timeoutMs} ms`)),
    )
    socket.on('data', (chunk: string) => (got += chunk))
    socket.on('error', reject)
    socket.on('close', (hadError) => {
      if (hadError) return
      while (/^HTTP\/1\.[01] 1\d\d /.test(got)) got = got.slice(got.indexOf('\r\n\r\n') + 4)
      const split = got.indexOf('\r\n\r\n')
      const [statusLine = '', ...lines] = (split === -1 ? got : got.slice(0, split)).split('\r\n')
      const headers: Record<string, string> = {}
      for (const line of lines) {
        const colon = line.indexOf(':')
        if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
      }
      resolve({
        status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0),
        headers,
        body: split === -1 ? '' : got.slice(split + 4),
      })
    })
    if (options.end === true) socket.end(text, 'latin1')
    else socket.write(text, 'latin1')
  })
}
