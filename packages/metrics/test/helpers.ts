import net from 'node:net'
import type { Logger, SecurityEvent } from '@gatehouse/core'

export interface RecordingLogger extends Logger {
  calls: Array<{ level: string; message: string; meta?: Record<string, unknown> }>
  text(): string
}

export function recordingLogger(): RecordingLogger {
  const calls: RecordingLogger['calls'] = []
  const at =
    (level: string) =>
    (message: string, meta?: Record<string, unknown>): void => {
      calls.push(meta === undefined ? { level, message } : { level, message, meta })
    }
  return { calls, text: () => JSON.stringify(calls), error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') }
}

export const event = (overrides: Partial<SecurityEvent> = {}): SecurityEvent => ({
  timestamp: new Date().toISOString(),
  event_type: 'auth_failure',
  provider: 'claude',
  ip: '192.168.1.100',
  result: 'invalid_token',
  ...overrides,
})

/** A 429 event; `ownLimit` says whether the caller's own per-IP or per-key limit refused it. */
export const rateLimited = (ip: string, ownLimit = true): SecurityEvent =>
  event({ event_type: 'security_violation', result: 'rate_limited', ip, details: { own_limit: ownLimit } })

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
