import net from 'node:net'

/** Value of one sample in Prometheus text, or undefined. `series` is `name{a="b"}` exactly as printed. */
export function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

export interface RawResponse {
  status: number
  /** Header lines, lower-cased names. */
  headers: Record<string, string>
  body: string
}

/**
 * Send `head` (request line and header lines, without the blank line) over a raw loopback socket
 * and read until the server closes: fetch and supertest always add a Host header, this does not.
 */
export function rawRequest(port: number, head: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let got = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => (got += chunk))
    socket.on('error', reject)
    socket.on('close', () => {
      const split = got.indexOf('\r\n\r\n')
      const [statusLine = '', ...lines] = got.slice(0, split).split('\r\n')
      const headers: Record<string, string> = {}
      for (const line of lines) {
        const colon = line.indexOf(':')
        headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
      }
      resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0), headers, body: got.slice(split + 4) })
    })
    socket.end(`${head}\r\n\r\n`, 'latin1')
  })
}
