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
  /** The local address to send from (another loopback address: Linux routes all of 127/8 to lo). */
  localAddress?: string
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
    ...(options.localAddress !== undefined ? { localAddress: options.localAddress } : {}),
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
  /** The final answer's body de-chunked (when its head says chunked) and decoded as UTF-8. */
  text: string
  /**
   * The status of every status line on the connection, in order, interim ones included (pipelined
   * answers): found by scanning the bytes for `HTTP/1.x NNN `, so a body quoting one counts too.
   */
  statuses: number[]
}

export interface RawHttpOptions {
  /** Also close the writing side after the text (a client that half-closes). @default false */
  end?: boolean
  /** The socket is destroyed after this long and the promise rejects. @default 10000 */
  timeoutMs?: number
  /**
   * Resolve as soon as the final answer's head is complete, closing the socket, instead of waiting
   * for the server to close (a stream, a kept-alive connection). @default false
   */
  headOnly?: boolean
  /**
   * For pipelined requests: once this many status lines came, close the writing side and resolve
   * when the server closes; reject when it closes before.
   */
  answers?: number
  /** Hang up this many ms after the text was written (a client that goes away mid-request) and resolve with what came. */
  hangUpAfterMs?: number
}

/** `got` without the interim (1xx) answers before the final one. */
function skipInterim(got: string): string {
  let rest = got
  while (/^HTTP\/1\.[01] 1\d\d /.test(rest) && rest.includes('\r\n\r\n')) rest = rest.slice(rest.indexOf('\r\n\r\n') + 4)
  return rest
}

/** A chunked body joined (latin1 in, latin1 out); what is cut short ends it. */
function dechunk(body: string): string {
  let out = ''
  let rest = body
  for (;;) {
    const nl = rest.indexOf('\r\n')
    const size = nl === -1 ? 0 : parseInt(rest.slice(0, nl), 16)
    if (!size) return out
    out += rest.slice(nl + 2, nl + 2 + size)
    rest = rest.slice(nl + 2 + size + 2)
  }
}

function parseRaw(got: string, statuses: number[]): RawReply {
  const answer = skipInterim(got)
  const split = answer.indexOf('\r\n\r\n')
  const [statusLine = '', ...lines] = (split === -1 ? answer : answer.slice(0, split)).split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
  }
  const body = split === -1 ? '' : answer.slice(split + 4)
  const chunked = /(^|,)\s*chunked\s*$/i.test(headers['transfer-encoding'] ?? '')
  return {
    status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0),
    headers,
    body,
    text: Buffer.from(chunked ? dechunk(body) : body, 'latin1').toString('utf8'),
    statuses,
  }
}

/**
 * Write `text` byte for byte (latin1) on a raw loopback socket and read until the server closes it:
 * for requests fetch and http.request would not send (no Host header, odd framing, pipelining).
 * The options choose when to stop otherwise (see {@link RawHttpOptions}). The socket is destroyed
 * after `timeoutMs` (default 10000) and the promise rejects.
 */
export function rawHttp(url: string, text: string, options: RawHttpOptions = {}): Promise<RawReply> {
  const u = new URL(url)
  const timeoutMs = options.timeoutMs ?? 10_000
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(u.port), u.hostname.replace(/^\[|\]$/g, ''))
    const chunks: string[] = []
    const statuses: number[] = []
    let tail = ''
    let headSeen = false
    let hangUp: NodeJS.Timeout | undefined
    socket.setEncoding('latin1')
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(new Error(`${url}: the server did not close within ${timeoutMs} ms`)),
    )
    socket.on('data', (chunk: string) => {
      chunks.push(chunk)
      // Only what is new is scanned (a status line cut between two chunks is in the tail).
      const scanned = tail + chunk
      const statusLine = /HTTP\/1\.[01] (\d{3}) /g
      let last = 0
      for (let m = statusLine.exec(scanned); m; m = statusLine.exec(scanned)) {
        statuses.push(Number(m[1]))
        last = statusLine.lastIndex
      }
      tail = scanned.slice(Math.max(last, scanned.length - 16))
      if (options.answers !== undefined && statuses.length >= options.answers) socket.end()
      if (options.headOnly === true && !headSeen && skipInterim(chunks.join('')).includes('\r\n\r\n')) {
        headSeen = true
        resolve(parseRaw(chunks.join(''), statuses))
        socket.destroy()
      }
    })
    socket.on('error', reject)
    socket.on('close', (hadError) => {
      clearTimeout(hangUp)
      if (hadError) return
      if (options.answers !== undefined && statuses.length < options.answers) {
        reject(new Error(`${url}: the connection closed after ${statuses.length} of ${options.answers} answers`))
        return
      }
      resolve(parseRaw(chunks.join(''), statuses))
    })
    const written = (): void => {
      if (options.hangUpAfterMs !== undefined) hangUp = setTimeout(() => socket.destroy(), options.hangUpAfterMs)
    }
    if (options.end === true) socket.end(text, 'latin1', written)
    else socket.write(text, 'latin1', written)
  })
}
